"""The same served classifier, its network run by ONNX Runtime: no TensorFlow or Keras in the
serving process: half the memory and a quarter of the environment (docs/benchmarks.md).

The ONNX graph is the Keras model's inference pass (raw 0-255 pixels in, uncalibrated softmax
out, exported by ``serving.onnx_export``); decoding, resizing and the temperature stay in
``classifier.ImageClassifier``, shared with the Keras classifier, so both answer a request alike.
"""

from __future__ import annotations

import numpy as np

from xraytrack.evaluation.calibration import Calibration
from xraytrack.serving.classifier import ImageClassifier, served_config

BATCH = 32  # a request of many images runs as batches of this size: bounded memory, full speed


def session(path: str):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


class OnnxClassifier(ImageClassifier):
    """Logged by ``tracking.model_logging.log_onnx_classifier`` with the ``.onnx`` file as its
    artifact ``onnx_model``."""

    @classmethod
    def from_file(cls, path: str, classes, img_size: int,
                  calibration: Calibration | None = None) -> "OnnxClassifier":
        wrapper = cls()
        wrapper._open(path, classes, img_size, calibration or Calibration())
        return wrapper

    def load_context(self, context):
        config = served_config(context.model_config)
        self._open(context.artifacts["onnx_model"], config["classes"], config["img_size"],
                   Calibration.from_metadata(config))

    def _open(self, path: str, classes, img_size: int, calibration: Calibration) -> None:
        self.session = session(str(path))
        self.input_name = self.session.get_inputs()[0].name
        self.classes, self.img_size, self.calibration = list(classes), int(img_size), calibration

    def network_outputs(self, batch: np.ndarray) -> np.ndarray:
        parts = [self.session.run(None, {self.input_name: batch[i:i + BATCH]})[0]
                 for i in range(0, len(batch), BATCH)]
        return np.concatenate(parts)
