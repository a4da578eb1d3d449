"""How much a number moves between seeds: mean, standard deviation, min and max per metric.

A single run is not a result: the same command with another seed (other starting weights,
augmentation draws and training order; the same split) can land a few points away. The
children's own metrics are summarised; nothing is re-scored here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraytrack.evaluation.metrics import HEADLINE

STATS = ("mean", "sd", "min", "max")


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """``per_seed``: one row per seed, one column per metric. Returns one row per metric with
    the columns of ``STATS`` (sd with n - 1 in the denominator; NaN for a single seed) and n."""
    values = per_seed.astype(float)
    return pd.DataFrame({
        "mean": values.mean(), "sd": values.std(ddof=1), "min": values.min(),
        "max": values.max(), "n": values.notna().sum(),
    })


def as_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """``test_macro_f1_mean``, ``test_macro_f1_sd``, ...; undefined ones left out."""
    return {f"{metric}_{stat}": float(summary.at[metric, stat]) for metric in summary.index
            for stat in STATS if not np.isnan(summary.at[metric, stat])}


def shown(metrics: list[str]) -> list[str]:
    """The rows worth a reader's eye: the headline scores on test and on validation, COVID's
    sensitivity at 95% specificity, calibration."""
    wanted = [f"{p}{m}" for p in ("test_", "restored_val_") for m in HEADLINE]
    wanted += ["test_covid_sens_at_95_spec", "test_ece_calibrated", "temperature"]
    return [m for m in wanted if m in metrics]


def to_markdown(per_seed: pd.DataFrame, summary: pd.DataFrame) -> str:
    rows = shown(list(summary.index))
    seeds = list(per_seed.index)
    lines = ["| metric | mean ± sd | min | max | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---" * (4 + len(seeds)) + "|"]
    for m in rows:
        s = summary.loc[m]
        spread = f"{s['mean']:.3f} ± {s['sd']:.3f}" if not np.isnan(s["sd"]) else f"{s['mean']:.3f}"
        cells = [f"{per_seed.at[seed, m]:.3f}" for seed in seeds]
        lines.append(f"| {m} | {spread} | {s['min']:.3f} | {s['max']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
