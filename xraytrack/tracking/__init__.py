"""Tracking: everything that talks to MLflow about runs and models.

``runs`` opens, adopts and reopens runs (the only place a run starts or ends), ``sysinfo``
describes the machine, ``model_logging`` logs a run's models, ``registry`` registers the best,
``loading`` finds a trained model again from a run id or model URI.
"""
