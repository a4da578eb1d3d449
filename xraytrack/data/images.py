"""Decode any X-ray file to 8-bit grayscale: PNG/JPEG/TIFF (grayscale, RGB, RGBA, palette, 8- or
16-bit) with Pillow, DICOM with pydicom (``data.dicom``).

X-rays carry one channel of information; the Kaggle download mixes grayscale and RGB copies of
them, so everything is reduced to grayscale here and the model widens it back when it needs RGB.
Training, evaluation, ``predict`` and the served model all decode through ``load_grayscale``.

One image may hold at most ``max_pixels()`` pixels (``XRAYTRACK_MAX_IMAGE_PIXELS``, default
50 million: a 7,000 x 7,000 image, beyond any real radiograph). Larger files are refused from
their header, before decoding, so a small file that claims a huge size costs no memory.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from xraytrack.data.dicom import DICOM_ERRORS, DICOM_EXTENSIONS, load_dicom, looks_like_dicom

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}) | DICOM_EXTENSIONS

# Errors Pillow and pydicom raise for files that are not (complete) images; anything else is a bug.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, *DICOM_ERRORS)

DEFAULT_MAX_PIXELS = 50_000_000
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def max_pixels() -> int:
    return int(os.environ.get("XRAYTRACK_MAX_IMAGE_PIXELS") or DEFAULT_MAX_PIXELS)


class ImageTooLarge(ValueError):
    """Above the pixel bound: a clear skip (or HTTP 400), never gigabytes of memory."""


def _check_size(width: int, height: int) -> None:
    limit = max_pixels()
    if width * height > limit:
        raise ImageTooLarge(f"{width}x{height} pixels is above the limit of {limit:,} "
                            "(XRAYTRACK_MAX_IMAGE_PIXELS)")


def _stretch_to_u8(arr: np.ndarray) -> np.ndarray:
    """Min-max stretch of a high-depth array to 0..255 in float32 (float64 would double the
    memory of a large 16-bit image for no visible difference)."""
    lo, hi = arr.min(), arr.max()
    scale = np.float32(255.0 / (float(hi) - float(lo))) if hi > lo else np.float32(0.0)
    out = np.empty(arr.shape, dtype=np.float32)
    np.subtract(arr, lo, out=out, dtype=np.float32)
    out *= scale
    return np.rint(out, out=out).astype(np.uint8)


def to_grayscale_u8(img: Image.Image) -> np.ndarray:
    """Return the image as a 2-D uint8 array, stretching high bit depths to 0..255."""
    if img.mode in HIGH_DEPTH_MODES:
        return _stretch_to_u8(np.asarray(img))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Flatten onto black: transparent margins of exported X-rays are background.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _is_dicom(source) -> bool:
    if isinstance(source, (str, os.PathLike)):
        if os.path.splitext(str(source))[1].lower() in DICOM_EXTENSIONS:
            return True
        with open(source, "rb") as fh:
            return looks_like_dicom(fh.read(132))
    position = source.tell()
    head = source.read(132)
    source.seek(position)
    return looks_like_dicom(head)


def _load_pillow(source) -> np.ndarray:
    with Image.open(source) as img:
        _check_size(*img.size)  # from the header, before any pixel is decoded
        img.load()  # force a full decode so truncated files fail here, not mid-epoch
        return to_grayscale_u8(img)


def load_grayscale(source) -> np.ndarray:
    """Fully decode ``source`` (a path or a binary file object); raises one of DECODE_ERRORS
    when it is not a usable image."""
    arr = load_dicom(source, max_pixels()) if _is_dicom(source) else _load_pillow(source)
    if arr.ndim != 2 or min(arr.shape) < 8:
        raise ValueError(f"image too small to use: {arr.shape}")
    return arr


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` the way Keras' image loaders do (no crop, bilinear)."""
    return np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR))


def decode_bytes(data: bytes, size: int) -> np.ndarray:
    """Decode an encoded image held in memory (the serving path) to a resized grayscale array:
    PNG, JPEG or DICOM, as from a file."""
    return resize(load_grayscale(io.BytesIO(data)), size)


def decode_files(root, paths, size: int):
    """Decode and resize ``root / path`` for each path, outside the training cache (a run's test
    split read back, an external site): (images, kept positions, skipped (path, reason))."""
    images, kept, skipped = [], [], []
    for i, path in enumerate(paths):
        try:
            images.append(resize(load_grayscale(Path(root) / path), size))
            kept.append(i)
        except (*DECODE_ERRORS, FileNotFoundError) as exc:
            log.warning("skipping %s: %s", path, exc)
            skipped.append((path, f"{type(exc).__name__}: {exc}"))
    return images, kept, skipped
