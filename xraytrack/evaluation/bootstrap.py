"""Bootstrap 95% intervals, resampling patients rather than images when patients are known.

Images of one patient are not independent: resampling them one by one makes an interval look
narrower than the evidence allows. With ``groups`` (patient ids), each resample draws whole
patients with replacement and keeps all of their images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVEL = 0.95


def resamples(n: int, n_boot: int, seed: int, groups=None) -> list[np.ndarray]:
    """``n_boot`` index arrays into ``n`` rows; whole groups drawn together when given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return list(rng.integers(0, n, size=(n_boot, n)))
    codes, uniques = pd.factorize(pd.Series(groups), use_na_sentinel=False)
    members = [np.flatnonzero(codes == g) for g in range(len(uniques))]
    picks = rng.integers(0, len(members), size=(n_boot, len(members)))
    return [np.concatenate([members[g] for g in row]) for row in picks]


def intervals(score_fn, boots: list[np.ndarray], progress: bool = False) -> pd.DataFrame:
    """Columns ``lo`` and ``hi``, one row per metric that ``score_fn(index)`` returns.
    ``progress`` shows a bar: a thousand resamples of a site's thousands of images take a
    minute here."""
    if progress:
        import keras

        bar = keras.utils.Progbar(len(boots), unit_name="resample")
        score_fn = _counted(score_fn, bar)
    return percentiles(pd.DataFrame([score_fn(b) for b in boots]))


def _counted(score_fn, bar):
    def scored(index):
        out = score_fn(index)
        bar.add(1)
        return out
    return scored


def percentiles(samples: pd.DataFrame) -> pd.DataFrame:
    """Columns ``lo`` and ``hi`` of each column of ``samples`` (one row per resample), NaNs
    left out: a resample without a class's positives has no AUC."""
    tail = 100 * (1 - LEVEL) / 2
    with np.errstate(all="ignore"):
        lo = samples.apply(lambda s: np.nanpercentile(s, tail) if s.notna().any() else np.nan)
        hi = samples.apply(lambda s: np.nanpercentile(s, 100 - tail) if s.notna().any() else np.nan)
    return pd.DataFrame({"lo": lo, "hi": hi})
