import io

import numpy as np
import pytest
from PIL import Image

from xraytrack.data.images import DECODE_ERRORS, decode_bytes, load_grayscale, resize


def _png(img: Image.Image) -> io.BytesIO:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    return buf


def test_rgb_and_grayscale_agree():
    gray = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 256
    gray = gray.astype(np.uint8)
    rgb = Image.fromarray(np.dstack([gray] * 3), "RGB")
    np.testing.assert_array_equal(load_grayscale(_png(rgb)), gray)
    np.testing.assert_array_equal(load_grayscale(_png(Image.fromarray(gray))), gray)


def test_sixteen_bit_is_stretched_to_full_range():
    arr = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)  # 12-bit style
    out = load_grayscale(_png(Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_rgba_transparency_becomes_black():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:16, :, 3] = 255  # top half opaque, bottom half transparent
    out = load_grayscale(_png(Image.fromarray(rgba, "RGBA")))
    assert out[:16].min() == 200 and out[16:].max() == 0


def test_corrupt_and_truncated_files_raise_decode_errors():
    good = _png(Image.fromarray(np.full((64, 64), 7, np.uint8))).getvalue()
    for data in (b"not an image", good[: len(good) // 2]):
        with pytest.raises(DECODE_ERRORS):
            load_grayscale(io.BytesIO(data))


def test_resize_and_decode_bytes_give_square_images():
    arr = np.zeros((300, 200), np.uint8)
    assert resize(arr, 64).shape == (64, 64)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    assert decode_bytes(buf.getvalue(), 32).shape == (32, 32)
