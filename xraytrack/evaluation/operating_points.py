"""Fixed operating points: thresholds chosen on validation, applied unchanged everywhere else.

A clinician asks first whether "catches 95% of COVID" still holds at a new hospital. So, at the
end of training, each class gets the thresholds on its (calibrated) probability that reach 90%
and 95% sensitivity on the validation split, one class vs the rest; the test split and every
external site are then read at those same thresholds, never re-tuned.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_curve

from xraytrack.evaluation.metrics import metric_name

TARGETS = (0.90, 0.95)


def threshold_for_sensitivity(positive: np.ndarray, score: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity (score >= threshold) reaches ``target``."""
    _, tpr, thresholds = roc_curve(positive, score)
    reached = thresholds[tpr >= target - 1e-12]
    return float(min(reached.max(), 1.0))


def choose_thresholds(y: np.ndarray, probs: np.ndarray, classes) -> dict[str, dict[str, float]]:
    """{class: {"0.90": t, "0.95": t}} on validation; classes without positives get none."""
    out = {}
    for c, name in enumerate(classes):
        positive = y == c
        if 0 < positive.sum() < len(y):
            out[name] = {f"{t:.2f}": threshold_for_sensitivity(positive, probs[:, c], t)
                         for t in TARGETS}
    return out


def rates(positive: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, PPV and NPV of a yes/no call (NaN where undefined)."""
    tp = float((called & positive).sum())
    fp = float((called & ~positive).sum())
    fn = float((~called & positive).sum())
    tn = float((~called & ~positive).sum())

    def ratio(a, b):
        return a / (a + b) if a + b else math.nan

    return {"sensitivity": ratio(tp, fn), "specificity": ratio(tn, fp),
            "ppv": ratio(tp, fp), "npv": ratio(tn, fn)}


def at_thresholds(y: np.ndarray, probs: np.ndarray, classes, thresholds: dict) -> dict[str, float]:
    """``<rate>_<class>_at_sens<target>`` for each stored threshold, e.g.
    ``specificity_covid_at_sens0.95``: what the validation-chosen point gives on these images.
    A class with no image here gets none, as in ``metrics.scores``."""
    out = {}
    for c, name in enumerate(classes):
        if not (y == c).any():
            continue
        for target, t in thresholds.get(name, {}).items():
            for rate, value in rates(y == c, probs[:, c] >= t).items():
                out[f"{rate}_{metric_name(name)}_at_sens{target}"] = value
    return out
