"""Serving: encoded images in, a label and class probabilities out.

``classifier`` is the MLflow pyfunc that ``mlflow models serve`` runs (it applies the training
preprocessing itself), ``served_model`` its models-from-code entry file, ``predict`` classifies
files and folders with it.
"""
