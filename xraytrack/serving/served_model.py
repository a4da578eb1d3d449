"""MLflow 'models from code' entry: the file logged as the classifier's python_model.

Importing it registers the image classifier; it is never imported by xraytrack itself.
"""

import mlflow

from xraytrack.serving.classifier import XrayClassifier

mlflow.models.set_model(XrayClassifier())
