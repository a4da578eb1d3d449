"""Compare strategies on one shared test split, with paired bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from xraytrack.metrics import metric_name

SPECIFICITY = 0.95


def sensitivity_at_specificity(positive: np.ndarray, score: np.ndarray,
                               specificity: float = SPECIFICITY) -> float:
    """Highest true-positive rate whose false-positive rate stays within 1 - specificity."""
    fpr, tpr, _ = roc_curve(positive, score)
    return float(tpr[fpr <= 1 - specificity + 1e-12].max())


def point_metrics(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Every compared metric for one set of predictions (NaN where a class is absent)."""
    labels = np.arange(len(classes))
    pred = probs.argmax(axis=1)
    out = {
        "macro_f1": f1_score(y, pred, labels=labels, average="macro", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
    }
    recalls = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    f1s = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    aucs = []
    for c, name in enumerate(classes):
        key = metric_name(name)
        positive = y == c
        both = 0 < positive.sum() < len(y)
        out[f"recall_{key}"], out[f"f1_{key}"] = recalls[c], f1s[c]
        out[f"auc_{key}"] = roc_auc_score(positive, probs[:, c]) if both else np.nan
        out[f"pr_auc_{key}"] = average_precision_score(positive, probs[:, c]) if both else np.nan
        aucs.append(out[f"auc_{key}"])
        if key == "covid":
            out["covid_sens_at_95_spec"] = (
                sensitivity_at_specificity(positive, probs[:, c]) if both else np.nan)
    out["macro_auc"] = float(np.nanmean(aucs)) if not np.isnan(aucs).all() else np.nan
    return {k: float(v) for k, v in out.items()}


def metric_names(classes: tuple[str, ...]) -> list[str]:
    """The keys point_metrics returns for these classes (checked against it in the tests)."""
    keys = [metric_name(c) for c in classes]
    names = ["macro_f1", "balanced_accuracy", "macro_auc"]
    names += [f"{m}_{k}" for k in keys for m in ("recall", "f1", "auc", "pr_auc")]
    return names + (["covid_sens_at_95_spec"] if "covid" in keys else [])


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Shared by every strategy, so their intervals come from the same resampled test sets."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def compare(predictions: dict[str, tuple[np.ndarray, np.ndarray]], classes: tuple[str, ...],
            n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per strategy: each metric with its 2.5% and 97.5% bootstrap percentiles."""
    n = len(next(iter(predictions.values()))[0])
    boots = bootstrap_indices(n, n_boot, seed)
    rows = []
    for strategy, (y, probs) in predictions.items():
        if len(y) != n:
            raise ValueError("every strategy must be scored on the same test split")
        row = {"strategy": strategy}
        point = point_metrics(y, probs, classes)
        samples = pd.DataFrame([point_metrics(y[b], probs[b], classes) for b in boots])
        for metric, value in point.items():
            row[metric] = value
            row[f"{metric}_lo"] = float(np.nanpercentile(samples[metric], 2.5))
            row[f"{metric}_hi"] = float(np.nanpercentile(samples[metric], 97.5))
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not c.endswith(("_lo", "_hi"))]


def to_markdown(table: pd.DataFrame) -> str:
    """Strategies as columns, metrics as rows: 'value [lo, hi]' reads well even for many classes."""
    metrics = metric_columns(table)
    header = "| metric | " + " | ".join(table.index) + " |"
    lines = [header, "|---" * (len(table.index) + 1) + "|"]
    for m in metrics:
        cells = [f"{table.at[s, m]:.3f} [{table.at[s, m + '_lo']:.3f}, {table.at[s, m + '_hi']:.3f}]"
                 if not np.isnan(table.at[s, m]) else "n/a" for s in table.index]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def overlaps(table: pd.DataFrame, metric: str, a: str, b: str) -> bool:
    return not (table.at[a, f"{metric}_hi"] < table.at[b, f"{metric}_lo"]
                or table.at[b, f"{metric}_hi"] < table.at[a, f"{metric}_lo"])


def summary(table: pd.DataFrame, classes: tuple[str, ...], baseline: str = "none") -> str:
    """Plain-words reading: per class, which strategy moved recall and F1, and is it resolvable."""
    if baseline not in table.index:
        baseline = table.index[0]
    lines = []
    for name in classes:
        key = metric_name(name)
        for metric in (f"recall_{key}", f"f1_{key}"):
            best = table[metric].idxmax()
            base = table.at[baseline, metric]
            if best == baseline:
                lines.append(f"- {name}: no strategy beat `{baseline}` on {metric.split('_')[0]} "
                             f"({base:.3f}).")
                continue
            verdict = ("the 95% intervals overlap, so the difference is not resolved by this test set"
                       if overlaps(table, metric, best, baseline)
                       else "the 95% intervals do not overlap")
            lines.append(f"- {name}: {metric.split('_')[0]} best with `{best}` "
                         f"({table.at[best, metric]:.3f}) vs `{baseline}` ({base:.3f}); {verdict}.")
    return "\n".join(lines) + "\n"
