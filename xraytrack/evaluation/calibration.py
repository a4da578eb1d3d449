"""Are the probabilities honest? Expected calibration error, and temperature scaling to fix it.

A fine-tuned network is usually over-confident: of the images it calls COVID with 0.99, fewer
than 99% are COVID. Temperature scaling (Guo et al. 2017) divides the logits by one number T
fitted on the validation split; it never changes which class wins, only how sure the model says
it is. The fit is scikit-learn's own (``CalibratedClassifierCV(method="temperature")``); only the
fitted T is kept, so serving needs nothing but a division.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_BINS = 15
EPS = np.finfo(np.float64).eps


def fit_temperature(y: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T that minimises the validation log loss of softmax(log(p) / T)."""
    # scikit-learn only here: the served model applies T without it
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import KFold

    class GivenProbabilities(ClassifierMixin, BaseEstimator):
        """A 'classifier' whose input already is its predicted probabilities."""

        def __init__(self, n_classes: int = 2):
            self.n_classes = n_classes
            self.classes_ = np.arange(n_classes)

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(axis=1)

    # The frozen 'classifier' predicts the same on every fold; plain 2-fold splits only keep
    # scikit-learn from asking for 5 images per class, which a small validation split lacks.
    calibrated = CalibratedClassifierCV(FrozenEstimator(GivenProbabilities(probs.shape[1])),
                                        method="temperature", cv=KFold(2))
    calibrated.fit(probs.astype(np.float64), y)
    beta = float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    return 1.0 / beta


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the same ranking of classes, sharper (T < 1) or softer (T > 1)."""
    logits = np.log(np.asarray(probs, dtype=np.float64) + EPS) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Calibration:
    """What the served model needs to turn network outputs into calibrated decisions."""

    temperature: float = 1.0
    thresholds: dict = field(default_factory=dict)  # {class: {"0.90": t, "0.95": t}}

    def metadata(self) -> dict:
        return {"temperature": self.temperature, "thresholds": self.thresholds}

    @classmethod
    def from_metadata(cls, meta: dict | None) -> "Calibration":
        """Models logged before calibration existed get T = 1 and no thresholds."""
        meta = meta or {}
        return cls(float(meta.get("temperature", 1.0)), dict(meta.get("thresholds") or {}))

    def apply(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(probs, self.temperature) if self.temperature != 1.0 else probs


def _binned_gap(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Sum over equal-width confidence bins of |accuracy - confidence| weighted by bin size."""
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> float:
    """Top-label ECE: how far the winning class's probability is from how often it is right."""
    return _binned_gap(probs.max(axis=1), probs.argmax(axis=1) == y, n_bins)


def class_calibration_error(y: np.ndarray, probs: np.ndarray, c: int, n_bins: int = N_BINS) -> float:
    """One class vs the rest: how far P(class c) is from the share of images that are c."""
    return _binned_gap(probs[:, c], y == c, n_bins)
