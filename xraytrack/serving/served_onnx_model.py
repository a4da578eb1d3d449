"""MLflow 'models from code' entry of the ONNX classifier (``classifier_onnx``).

It imports neither TensorFlow nor Keras, so the serving process carries ONNX Runtime only.
"""

import mlflow

from xraytrack.serving.onnx_classifier import OnnxClassifier

mlflow.models.set_model(OnnxClassifier())
