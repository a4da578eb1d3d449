"""The served model: encoded PNG/JPEG bytes in, a label and one probability per class out.

It wraps the trained network (Keras here, ONNX Runtime in ``onnx_classifier``) with the exact
preprocessing of training (``data.images``: decode to 8-bit grayscale, resize), so a client
never needs to know the input size or scaling.
Requests are a DataFrame with one column, ``image``, of base64 strings: the form
``mlflow models serve`` accepts as JSON. Malformed rows raise ``INVALID_PARAMETER_VALUE``, which
the scoring server answers with HTTP 400 and keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import io

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from PIL import Image, UnidentifiedImageError

from xraytrack.data.images import DECODE_ERRORS, decode_bytes
from xraytrack.evaluation.calibration import Calibration

COLUMN = "image"
CONFIG_KEY = "classifier"  # the classifier's settings sit under this key of its model_config


def logged_config(config: dict) -> dict:
    """The ``model_config`` a classifier is logged with. MLflow also logs a model_config as run
    parameters; nested under one key they become ``classifier/img_size`` and so on, and never
    collide with the ``classes`` and ``img_size`` that an ``mlflow run`` entry point has already
    logged (a collision drops every one of them, with a warning)."""
    return {CONFIG_KEY: config}


def served_config(model_config: dict) -> dict:
    """The classifier's settings from a logged model's config: nested (``logged_config``), or at
    the top level, as models logged before the nesting have them."""
    return model_config.get(CONFIG_KEY, model_config)


def encode_image(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_frame(images: list[bytes]) -> pd.DataFrame:
    """What a client sends: one base64 string per encoded image."""
    return pd.DataFrame({COLUMN: [encode_image(b) for b in images]})


def _bad_request(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def decode_request_row(row: int, value, img_size: int) -> np.ndarray:
    if value is None or (isinstance(value, (str, bytes)) and len(value) == 0):
        raise _bad_request(f"row {row}: '{COLUMN}' is empty; send a base64-encoded PNG or JPEG")
    if not isinstance(value, (str, bytes)):
        raise _bad_request(f"row {row}: '{COLUMN}' must be a base64 string of a PNG, JPEG or "
                           f"DICOM file; got {type(value).__name__} {str(value)[:40]!r}")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_request(f"row {row}: '{COLUMN}' is not valid base64 ({exc})") from None
    try:
        return decode_bytes(data, img_size)
    except DECODE_ERRORS as exc:
        # Pillow names the in-memory buffer (`<_io.BytesIO object at 0x...>`): no help to a client
        why = "unknown format" if isinstance(exc, UnidentifiedImageError) else exc
        raise _bad_request(f"row {row}: not a readable PNG/JPEG/DICOM image ({why})") from None


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """The request contract every served classifier keeps, whatever runs the network: rows of
    encoded images in, a label and calibrated probabilities out. A subclass only says how to get
    raw network outputs for a batch of pixels (``network_outputs``)."""

    calibration = Calibration()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if COLUMN not in model_input or len(model_input) == 0:
            raise _bad_request(f"send at least one row with an '{COLUMN}' column")
        pixels = [decode_request_row(i, v, self.img_size) for i, v in enumerate(model_input[COLUMN])]
        return self.predict_pixels(np.stack(pixels))

    def predict_pixels(self, pixels: np.ndarray) -> pd.DataFrame:
        """Decoded 8-bit images (N, H, W) in; the whole request is batched, never image by image."""
        probs = self.calibration.apply(self.network_outputs(pixels[..., None].astype("float32")))
        out = pd.DataFrame(probs.astype("float64"), columns=self.classes)
        out.insert(0, "label", [self.classes[i] for i in probs.argmax(axis=1)])
        return out

    def network_outputs(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class XrayClassifier(ImageClassifier):
    """MLflow pyfunc around the Keras model; ``predict_pixels`` serves already-decoded images.

    It is logged by ``tracking.model_logging.log_classifier``. Models logged before xraytrack
    0.2 import it as ``xraytrack.classifier``, which still works (a shim module).
    """

    @classmethod
    def from_keras(cls, model, classes, img_size: int,
                   calibration: Calibration | None = None) -> "XrayClassifier":
        """The wrapper around an in-memory model, as ``load_context`` would make it."""
        wrapper = cls()
        wrapper.model, wrapper.classes, wrapper.img_size = model, list(classes), int(img_size)
        wrapper.calibration = calibration or Calibration()
        return wrapper

    def load_context(self, context):
        import keras

        from xraytrack.models import preprocessing  # noqa: F401  registers its layers (not at the
        # top: the ONNX classifier shares this module and serves without Keras)

        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False)
        config = served_config(context.model_config)
        self.classes = list(config["classes"])
        self.img_size = int(config["img_size"])
        # Models logged before calibration existed have no temperature: T = 1.
        self.calibration = Calibration.from_metadata(config)

    def network_outputs(self, batch: np.ndarray) -> np.ndarray:
        return self.model.predict(batch, verbose=0)


def example_png(img_size: int) -> bytes:
    """A small mid-grey PNG: the logged input example (any size works; it is resized)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((img_size, img_size), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
