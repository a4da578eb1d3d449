"""DICOM files made in the tests with pydicom: what a hospital's PACS export looks like."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _dataset(sop_class: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    return ds


def write_xray(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
               bits_stored: int = 12, window: tuple[float, float] | None = None) -> Path:
    """A 16-bit-allocated DX image (values up to 2**bits_stored - 1), optionally windowed."""
    ds = _dataset(DX_FOR_PRESENTATION)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_report(path: Path) -> Path:
    """A structured report: a valid DICOM file with no image in it."""
    ds = _dataset(BASIC_TEXT_SR)
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)
    return path
