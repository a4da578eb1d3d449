"""Old import path of the served model, kept so models logged before xraytrack 0.2 still load.

Their ``served_model.py`` says ``from xraytrack.classifier import XrayClassifier``; new code
imports ``xraytrack.serving.classifier``.
"""

from xraytrack.serving.classifier import XrayClassifier  # noqa: F401
