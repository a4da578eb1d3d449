"""DICOM input: photometric interpretation, bit depth, windowing, and files that are no image."""

import numpy as np
import pytest
from dicoms import write_report, write_xray

from xraytrack.data.images import DECODE_ERRORS, decode_bytes, load_grayscale
from xraytrack.data.labelled import read_labelled


def _ramp(bits: int = 12) -> np.ndarray:
    """Left dark, right bright, over the full range of ``bits``."""
    return np.tile(np.linspace(0, 2**bits - 1, 64), (48, 1)).round()


def test_a_16_bit_monochrome2_image_is_stretched_to_8_bits(tmp_path):
    gray = load_grayscale(write_xray(tmp_path / "a.dcm", _ramp(16), bits_stored=16))
    assert gray.dtype == np.uint8 and gray.shape == (48, 64)
    assert gray[:, 0].max() == 0 and gray[:, -1].min() == 255
    assert (np.diff(gray[0].astype(int)) >= 0).all()


def test_monochrome1_is_inverted_so_bones_stay_bright(tmp_path):
    two = load_grayscale(write_xray(tmp_path / "m2.dcm", _ramp()))
    one = load_grayscale(write_xray(tmp_path / "m1.dcm", _ramp(), photometric="MONOCHROME1"))
    np.testing.assert_array_equal(one, 255 - two)


def test_the_stored_window_is_applied(tmp_path):
    """Window 1024 +- 256: everything below 768 is black, above 1280 white."""
    gray = load_grayscale(write_xray(tmp_path / "w.dcm", _ramp(), window=(1024, 512)))
    values = _ramp()[0]
    assert (gray[0][values < 700] == 0).all() and (gray[0][values > 1350] == 255).all()
    assert 0 < gray[0][np.argmin(abs(values - 1024))] < 255


def test_a_dicom_without_pixels_is_a_decode_error_that_says_so(tmp_path):
    with pytest.raises(DECODE_ERRORS, match="without pixel data"):
        load_grayscale(write_report(tmp_path / "report.dcm"))


def test_dicom_bytes_decode_like_the_file(tmp_path):
    path = write_xray(tmp_path / "a.dcm", _ramp())
    np.testing.assert_array_equal(decode_bytes(path.read_bytes(), 32),
                                  decode_bytes(path.read_bytes(), 32))
    assert decode_bytes(path.read_bytes(), 32).shape == (32, 32)


def test_a_folder_of_dicom_files_is_a_labelled_set(tmp_path):
    for cls in ("COVID", "Normal"):
        (tmp_path / cls).mkdir()
        write_xray(tmp_path / cls / f"{cls}-1.dcm", _ramp())
    files = read_labelled(tmp_path)
    assert sorted(files.frame["label"]) == ["COVID", "Normal"]
    assert all(p.endswith(".dcm") for p in files.frame["path"])
