"""The one scoring function: every number that describes a set of predictions comes from here.

``scores(y_true, probs, classes)`` serves a run's test split (logged as ``test_<name>``), each
strategy of a comparison and its bootstrap resamples, and the shortcut audit (``audit_*``). It
takes ``y_true`` and ``probs`` row-aligned: the caller guarantees that row i of both is the same
image, which is what the seed project got wrong.
"""

from __future__ import annotations

import logging
import math
import re
import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    multilabel_confusion_matrix,
    roc_auc_score,
    roc_curve,
)

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")  # the scores a run leads with
SPECIFICITY = 0.95  # the operating point of ``covid_sens_at_95_spec``


def metric_name(class_name: str) -> str:
    """'Viral Pneumonia' -> 'viral_pneumonia': a class name as an MLflow metric suffix."""
    return re.sub(r"[^0-9a-z_]+", "_", class_name.lower().replace(" ", "_")).strip("_")


def sensitivity_at_specificity(positive: np.ndarray, score: np.ndarray,
                               specificity: float = SPECIFICITY) -> float:
    """Highest true-positive rate whose false-positive rate stays within 1 - specificity."""
    fpr, tpr, _ = roc_curve(positive, score)
    return float(tpr[fpr <= 1 - specificity + 1e-12].max())


def _ranking_defined(positive: np.ndarray) -> bool:
    """Ranking needs both positives and negatives among the labels."""
    return 0 < positive.sum() < len(positive)


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """One class vs the rest, ROC AUC; NaN where ranking is undefined."""
    return float(roc_auc_score(positive, score)) if _ranking_defined(positive) else math.nan


def _ranking_scores(positive: np.ndarray, score: np.ndarray, key: str) -> dict[str, float]:
    """One class vs the rest: ROC AUC, PR AUC (and COVID's sensitivity at 95% specificity);
    NaN when the labels lack positives or negatives, where ranking is undefined."""
    defined = _ranking_defined(positive)
    out = {
        f"auc_{key}": _auc(positive, score),
        f"pr_auc_{key}": average_precision_score(positive, score) if defined else math.nan,
    }
    if key == "covid":
        out["covid_sens_at_95_spec"] = (sensitivity_at_specificity(positive, score)
                                        if defined else math.nan)
    return out


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``; a site without some model class (or a
    bootstrap resample) makes sklearn warn about predictions of it on every call, and one with a
    single known class (every prediction right) about its one-cell confusion matrix: not here."""
    if not len(y_true):
        return math.nan
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found in 'y_true' and 'y_pred'")
        return balanced_accuracy_score(y_true, y_pred)


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """One class vs the rest, from scikit-learn's per-class confusion matrices: rows whose label
    is not a model class (-1) count as negatives of every class."""
    cm = multilabel_confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    tn, fp, fn, tp = (cm[:, i, j].astype(float) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))

    def ratio(a, b, empty=0.0):  # sklearn's zero_division=0 for precision; NaN where undefined
        return np.divide(a, b, out=np.full(len(a), empty), where=b > 0)

    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "specificity": ratio(tn, tn + fp, math.nan),
        "npv": ratio(tn, tn + fn, math.nan),
    }


def scores(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Every metric the project reports, unprefixed: ``accuracy``, ``balanced_accuracy``,
    ``macro_f1``, ``macro_auc``, and per class ``precision_<c>`` (PPV), ``recall_<c>``
    (sensitivity), ``specificity_<c>``, ``npv_<c>``, ``f1_<c>``, ``auc_<c>`` and ``pr_auc_<c>``
    (plus ``covid_sens_at_95_spec`` when a class is COVID).

    ``y_true`` holds class indices; -1 marks an image whose label is not a model class (an
    external site's ``Other_pneumonia``): it counts as a negative in every class's one-vs-rest
    view and is left out of accuracy, balanced accuracy and the macro averages' classes. A model
    class with no image here gets no per-class metric (NaN) and no say in the macro averages.
    Undefined values are NaN; ``prefixed`` drops them for logging.
    """
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    known = y_true >= 0
    present = np.isin(np.arange(len(classes)), y_true[known])
    out = {
        "accuracy": accuracy_score(y_true[known], y_pred[known]) if known.any() else math.nan,
        "balanced_accuracy": _balanced_accuracy(y_true[known], y_pred[known]),
    }
    per_class = _per_class(y_true, y_pred, len(classes))
    for c, name in enumerate(classes):
        key = metric_name(name)
        for rate, values in per_class.items():
            out[f"{rate}_{key}"] = values[c] if present[c] else math.nan
        ranking = _ranking_scores(y_true == c, probs[:, c], key)
        out |= ranking if present[c] else dict.fromkeys(ranking, math.nan)
    f1s = per_class["f1"][present]
    aucs = [out[f"auc_{metric_name(n)}"] for n in classes]
    out["macro_f1"] = float(np.mean(f1s)) if len(f1s) else math.nan
    out["macro_auc"] = math.nan if np.isnan(aucs).all() else float(np.nanmean(aucs))
    return {k: float(v) for k, v in out.items()}


def balanced_accuracy_and_macro_auc(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Two of ``scores``, the same values, without the per-class rates, PR curves and operating
    points: what a bootstrap of hundreds of resamples needs (the audit's intervals)."""
    y_true = np.asarray(y_true)
    known = y_true >= 0
    aucs = []
    for c in range(probs.shape[1]):
        positive = y_true == c
        defined = positive[known].any() and not positive.all()
        aucs.append(roc_auc_score(positive, probs[:, c]) if defined else math.nan)
    return {"balanced_accuracy": float(_balanced_accuracy(y_true[known], probs.argmax(axis=1)[known])),
            "macro_auc": math.nan if np.isnan(aucs).all() else float(np.nanmean(aucs))}


def one_score(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], name: str) -> float:
    """One of ``scores``' numbers, the same value. An AUC (``auc_<class>``, ``macro_auc``) is
    computed alone, the rest through ``scores``: a paired bootstrap scores every arm and seed on
    each of a thousand resamples, and ``scores`` is mostly the PR curves and rates it would drop."""
    y_true = np.asarray(y_true)
    if name == "macro_auc":
        return balanced_accuracy_and_macro_auc(y_true, probs)["macro_auc"]
    keys = [metric_name(c) for c in classes]
    if name.startswith("auc_") and name[len("auc_"):] in keys:
        c = keys.index(name[len("auc_"):])
        return _auc(y_true == c, probs[:, c])
    return scores(y_true, probs, classes)[name]


def score_names(classes: tuple[str, ...]) -> list[str]:
    """The keys ``scores`` returns for these classes, without computing anything."""
    keys = [metric_name(c) for c in classes]
    names = [*HEADLINE]
    names += [f"{m}_{k}" for k in keys
              for m in ("precision", "recall", "specificity", "npv", "f1", "auc", "pr_auc")]
    return names + (["covid_sens_at_95_spec"] if "covid" in keys else [])


def prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    """``values`` named for logging (``test_macro_f1``), undefined (NaN) ones left out."""
    return {prefix + k: v for k, v in values.items() if not math.isnan(v)}


def headline(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k in HEADLINE}


def undefined_warnings(values: dict[str, float], classes: tuple[str, ...]) -> None:
    """Say once, for a whole evaluation, which per-class ranking scores are undefined."""
    for name in classes:
        if math.isnan(values.get(f"auc_{metric_name(name)}", 0.0)):
            log.warning("AUC of class %s undefined: the labels lack its positives or negatives", name)


def report(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> tuple[dict, str]:
    """scikit-learn's classification report as a dict (for JSON) and as text."""
    kwargs = dict(labels=np.arange(len(classes)), target_names=classes, zero_division=0)
    y_pred = probs.argmax(axis=1)
    return (
        classification_report(y_true, y_pred, output_dict=True, **kwargs),
        classification_report(y_true, y_pred, digits=4, **kwargs),
    )


def confusion(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and row-normalised rates (rows: true class, columns: predicted)."""
    counts = confusion_matrix(y_true, probs.argmax(axis=1), labels=np.arange(n_classes))
    rows = counts.sum(axis=1, keepdims=True)
    return counts, np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
