"""Decode any X-ray file (PNG/JPEG, grayscale/RGB/RGBA/palette, 8- or 16-bit) to 8-bit grayscale.

X-rays carry one channel of information; the Kaggle download mixes grayscale and RGB copies of
them, so everything is reduced to grayscale here and the model widens it back when it needs RGB.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

# Errors Pillow raises for files that are not (complete) images; anything else is a bug.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_grayscale_u8(img: Image.Image) -> np.ndarray:
    """Return the image as a 2-D uint8 array, stretching high bit depths to 0..255."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return ((arr - lo) * scale).round().astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Flatten onto black: transparent margins of exported X-rays are background.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def load_grayscale(path) -> np.ndarray:
    """Fully decode ``path``; raises one of DECODE_ERRORS when the file is not a usable image."""
    with Image.open(path) as img:
        img.load()  # force a full decode so truncated files fail here, not mid-epoch
        arr = to_grayscale_u8(img)
    if arr.ndim != 2 or min(arr.shape) < 8:
        raise ValueError(f"image too small to use: {arr.shape}")
    return arr


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` the way Keras' image loaders do (no crop, bilinear)."""
    return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR))


def decode_bytes(data: bytes, size: int) -> np.ndarray:
    """Decode an encoded image held in memory (the serving path) to a resized grayscale array."""
    return resize(load_grayscale(io.BytesIO(data)), size)
