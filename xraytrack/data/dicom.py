"""DICOM X-rays (``.dcm``) to 8-bit grayscale, the way a radiology viewer shows them.

pydicom reads the file; the modality LUT (rescale slope/intercept) and the VOI LUT or window
stored in the file are applied as a viewer would; MONOCHROME1 images (bright = air) are
inverted, so every X-ray reaches the model with bones bright; 12- and 16-bit values are stretched
to 0..255. A DICOM without pixel data (a report, a presentation state) is not an image: it is a
logged skip like any unreadable file.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
DICOM_ERRORS = (InvalidDicomError,)


def looks_like_dicom(head: bytes) -> bool:
    """Part 10 files carry 'DICM' after a 128-byte preamble."""
    return head[128:132] == b"DICM"


def _checked(ds, max_pixels: int) -> None:
    if "PixelData" not in ds:
        kind = getattr(ds, "SOPClassUID", None)
        name = getattr(kind, "name", None) or str(kind or "unknown")
        raise ValueError(f"DICOM without pixel data ({name}): not an image")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols > max_pixels:
        raise ValueError(f"DICOM image of {cols}x{rows} pixels is above the limit of "
                         f"{max_pixels:,} (XRAYTRACK_MAX_IMAGE_PIXELS)")


def _pixels(ds) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError, AttributeError) as exc:  # e.g. JPEG 2000, no plugin
        raise ValueError(f"cannot decode this DICOM's pixel data ({exc})") from None
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]  # a multi-frame file: the first frame
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        return arr.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    arr = apply_modality_lut(arr, ds)
    return apply_voi_lut(arr, ds, index=0)


def dicom_to_gray(ds, max_pixels: int) -> np.ndarray:
    """A read dataset as a 2-D uint8 array, bones bright."""
    _checked(ds, max_pixels)
    arr = np.asarray(_pixels(ds), dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    scale = np.float32(255.0 / (hi - lo)) if hi > lo else np.float32(0.0)
    gray = np.rint((arr - np.float32(lo)) * scale).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        gray = 255 - gray
    return gray


def load_dicom(source, max_pixels: int) -> np.ndarray:
    """``source``: a path or a binary file object."""
    return dicom_to_gray(pydicom.dcmread(source), max_pixels)
