"""Serving: encoded images in, a label and class probabilities out.

``classifier`` is the MLflow pyfunc that ``mlflow models serve`` runs (it applies the training
preprocessing itself), ``served_model`` its models-from-code entry file, ``predict`` classifies
files and folders with it. ``onnx_export`` turns the Keras model into a checked ONNX graph,
``onnx_classifier`` (entry file ``served_onnx_model``) serves it without TensorFlow, and
``export`` adds it to a run (``xraytrack export``, ``register --onnx``).
"""
