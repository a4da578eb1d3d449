"""Compare strategies on one shared test split, with paired bootstrap confidence intervals, and
beside it what each strategy scored at an external site.

What is scored comes from ``metrics.scores``, the same function that gives each strategy's child
run its ``test_*`` metrics; this module adds only what is its own: the intervals and the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraytrack.evaluation import bootstrap
from xraytrack.evaluation.metrics import metric_name, scores


def compare(predictions: dict[str, tuple[np.ndarray, np.ndarray]], classes: tuple[str, ...],
            n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per strategy: each metric with its 2.5% and 97.5% bootstrap percentiles."""
    n = len(next(iter(predictions.values()))[0])
    boots = bootstrap.resamples(n, n_boot, seed)  # shared: paired intervals across strategies
    rows = []
    for strategy, (y, probs) in predictions.items():
        if len(y) != n:
            raise ValueError("every strategy must be scored on the same test split")
        row = {"strategy": strategy}
        point = scores(y, probs, classes)
        ci = bootstrap.intervals(lambda b: scores(y[b], probs[b], classes), boots)
        for metric, value in point.items():
            row |= {metric: value, f"{metric}_lo": float(ci.at[metric, "lo"]),
                    f"{metric}_hi": float(ci.at[metric, "hi"])}
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not c.endswith(("_lo", "_hi"))]


def _cell(table: pd.DataFrame, strategy: str, metric: str) -> str:
    if metric not in table.columns or np.isnan(table.at[strategy, metric]):
        return "n/a"
    return (f"{table.at[strategy, metric]:.3f} [{table.at[strategy, metric + '_lo']:.3f}, "
            f"{table.at[strategy, metric + '_hi']:.3f}]")


def to_markdown(table: pd.DataFrame) -> str:
    """Strategies as columns, metrics as rows: 'value [lo, hi]' reads well even for many classes."""
    metrics = metric_columns(table)
    header = "| metric | " + " | ".join(table.index) + " |"
    lines = [header, "|---" * (len(table.index) + 1) + "|"]
    for m in metrics:
        cells = [_cell(table, s, m) for s in table.index]
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


def across_seeds(table: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One row per strategy: ``<metric>_mean`` and ``<metric>_sd`` (n - 1) over its rows of
    ``table`` (one per seed)."""
    rows = {}
    for strategy, labels in groups.items():
        values = table.loc[labels, metric_columns(table)].astype(float)
        rows[strategy] = ({f"{m}_mean": v for m, v in values.mean().items()}
                          | {f"{m}_sd": v for m, v in values.std(ddof=1).items()})
    return pd.DataFrame(rows).T.rename_axis("strategy")


def seeds_markdown(spread: pd.DataFrame) -> str:
    """Strategies as columns, metrics as rows, 'mean ± sd' in each cell."""
    metrics = [c[:-len("_mean")] for c in spread.columns if c.endswith("_mean")]
    lines = ["| metric | " + " | ".join(spread.index) + " |", "|---" * (len(spread.index) + 1) + "|"]
    for m in metrics:
        cells = [f"{spread.at[s, m + '_mean']:.3f} ± {spread.at[s, m + '_sd']:.3f}" for s in spread.index]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def site_table(scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each strategy's external scores (``value, lo, hi`` rows from its evaluation run) in the
    shape of ``compare``'s table, so ``to_markdown`` prints both alike. Metrics are kept in
    ``metrics.scores``' order where they have one."""
    rows = []
    for strategy, frame in scores.items():
        row = {"strategy": strategy}
        for metric in frame.index:
            row |= {metric: frame.at[metric, "value"], f"{metric}_lo": frame.at[metric, "lo"],
                    f"{metric}_hi": frame.at[metric, "hi"]}
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def inside_and_outside(table: pd.DataFrame, external: pd.DataFrame, site: str,
                       internal_metrics: tuple[str, ...], site_metrics: tuple[str, ...]) -> str:
    """Markdown: one row per strategy, the internal test scores beside the site's, each with its
    95% interval: the trade-off a reader looks for (does a strategy that wins inside lose outside?)."""
    site_metrics = tuple(m for m in site_metrics if m in external.columns)
    header = [f"internal {m}" for m in internal_metrics] + [f"{site} {m}" for m in site_metrics]
    lines = ["| strategy | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for strategy in table.index:
        cells = [_cell(table, strategy, m) for m in internal_metrics]
        cells += [_cell(external, strategy, m) for m in site_metrics]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tradeoff(internal: pd.Series, external: pd.DataFrame, metric: str, baseline: str,
             tolerance: float, spread: str = "95% intervals") -> tuple[str | None, str]:
    """The arm that best keeps the internal score while raising the external one: among the arms
    whose internal score is within ``tolerance`` of ``baseline``'s, the highest external
    ``metric``. Returns it (None when the site gives no such score, or when there is one arm
    and so nothing to weigh it against) and a plain-words sentence saying whether its external
    interval clears the baseline's, and, when an arm beyond the tolerance scores higher outside,
    that arm's score and internal cost.

    ``internal`` holds one value per arm (a mean over seeds when seeded); ``external`` is
    ``site_table``'s shape, one row per arm, with ``<metric>_lo/_hi`` (``spread`` names them)."""
    if metric not in external.columns or external[metric].isna().all():
        return None, f"The site gives no {metric}, so no arm is named for it."
    if len(internal) == 1:  # a strategy scored alone: naming it would compare it with itself
        return None, (f"One arm, so nothing to trade off: `{baseline}` scores {metric} "
                      f"{_scored(external, baseline, metric)} outside ({spread}) and "
                      f"{internal[baseline]:.3f} inside; compare it with another arm to name one.")
    floor = internal[baseline] - tolerance
    kept = [arm for arm in internal.index if internal[arm] >= floor
            and not np.isnan(external.at[arm, metric])]
    best = max(kept, key=lambda arm: external.at[arm, metric])
    head = (f"Within {tolerance:g} of `{baseline}` inside (>= {floor:.3f}), the highest external "
            f"{metric} is `{best}`: {_scored(external, best, metric)} "
            f"vs `{baseline}` {_scored(external, baseline, metric)}")
    if best == baseline:
        sentence = head + f"; no arm kept inside beats `{baseline}` outside (brackets: {spread})."
    else:
        clears = external.at[best, metric + "_lo"] > external.at[baseline, metric + "_hi"]
        sentence = head + (f"; the {spread} do not overlap." if clears else
                           f"; the {spread} overlap, so the gain is not resolved by this site.")
    top = best_outside(external, metric)
    if external.at[top, metric] > external.at[best, metric]:
        sentence += (f" The highest external {metric} of any arm is `{top}`'s, "
                     f"{_scored(external, top, metric)}, at an internal cost of "
                     f"{internal[baseline] - internal[top]:.3f} (more than the {tolerance:g} allowed).")
    return best, sentence


def _scored(external: pd.DataFrame, arm: str, metric: str) -> str:
    """One arm's external ``metric`` with its spread, "0.680 [0.650, 0.726]": the form every
    sentence of the trade-off uses, so an arm reads the same wherever it is named."""
    return (f"{external.at[arm, metric]:.3f} [{external.at[arm, metric + '_lo']:.3f}, "
            f"{external.at[arm, metric + '_hi']:.3f}]")


def best_outside(external: pd.DataFrame, metric: str) -> str:
    """The arm with the highest external ``metric`` whatever its internal cost: when it is not
    the arm kept inside, its cost is the trade-off a user weighs."""
    return external[metric].astype(float).idxmax()
