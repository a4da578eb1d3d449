"""Is one arm better than the baseline on the same images? A paired bootstrap of the difference.

Two models scored on the same 44 external images share the luck of which patients happened to
be in the set. Their separate 95% intervals are each as wide as that luck, so they overlap even
when one model ranks better on nearly every resample. Resampling the patients once for every arm
and reading each arm's score minus the baseline's on the same resample removes the shared part:
the interval of the difference is what says whether a gain is resolved by the set.

With seeds, an arm's score on a resample is the mean over its seeds' models, so the interval is
that of the seed-averaged difference; it says nothing of how far another set of seeds would move
the mean, which the seeds' own spread shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraytrack.evaluation import bootstrap
from xraytrack.evaluation.metrics import one_score


def differences(y: np.ndarray, arms: dict[str, list[np.ndarray]], classes: tuple[str, ...],
                metric: str, baseline: str, n_boot: int = 1000, seed: int = 0,
                groups=None) -> pd.DataFrame:
    """One row per arm other than ``baseline``: ``difference`` (its ``metric`` minus the
    baseline's, each the mean over the arm's models), ``lo`` and ``hi`` (the 2.5% and 97.5%
    percentiles over resamples shared by every arm; whole ``groups`` drawn together) and
    ``better_share`` (the share of resamples where the arm scored higher).

    ``arms`` maps each arm to its models' probabilities (one array per seed), all row-aligned
    with ``y``."""
    if baseline not in arms:
        raise ValueError(f"the baseline {baseline!r} is not among the arms")
    if any(len(p) != len(y) for models in arms.values() for p in models):
        raise ValueError("every model must be scored on the same rows as the labels")
    others = [arm for arm in arms if arm != baseline]

    def gains(index: np.ndarray) -> dict[str, float]:
        value = {arm: np.mean([one_score(y[index], p[index], classes, metric) for p in models])
                 for arm, models in arms.items()}
        return {arm: value[arm] - value[baseline] for arm in others}

    boots = bootstrap.resamples(len(y), n_boot, seed, groups)
    samples = pd.DataFrame([gains(b) for b in boots], columns=others)
    ci = bootstrap.percentiles(samples)
    point = pd.Series(gains(np.arange(len(y))), name="difference")
    better = (samples > 0).sum() / samples.notna().sum()
    return pd.concat([point, ci, better.rename("better_share")], axis=1).loc[others]


def describe(table: pd.DataFrame, arm: str, baseline: str, metric: str) -> str:
    """One sentence on ``arm`` against ``baseline`` from ``differences``' table."""
    row = table.loc[arm]
    if np.isnan(row["lo"]):
        return f"The paired difference of {metric} is undefined on this set."
    verdict = ("the interval is above 0: the set resolves a gain" if row["lo"] > 0 else
               "the interval is below 0: the set resolves a loss" if row["hi"] < 0 else
               "the interval holds 0: the set does not resolve the difference")
    return (f"Paired on the same resamples, `{arm}` minus `{baseline}` in {metric} is "
            f"{row['difference']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}] ({row['better_share']:.0%}"
            f" of resamples higher); {verdict}.")


def to_markdown(table: pd.DataFrame, baseline: str, metric: str) -> str:
    lines = [f"| arm | {metric} minus `{baseline}` [95% CI] | share of resamples higher |",
             "|---|---|---|"]
    for arm, row in table.iterrows():
        lines.append(f"| {arm} | {row['difference']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}] | "
                     f"{row['better_share']:.0%} |")
    return "\n".join(lines) + "\n"
