"""Class-balancing strategies, applied to the training split only (never val or test).

Each strategy decides which training images an epoch sees, or how much each class weighs:
  none              every training image once per epoch, shuffled
  class_weight      every image once; the loss weighs classes by scikit-learn's 'balanced' weights
  oversample        imbalanced-learn's RandomOverSampler: minority images repeated up to the majority
  undersample       imbalanced-learn's RandomUnderSampler: majority images dropped to the minority
  balanced_batches  every batch holds (almost) the same number of images of each class
Resampling is redrawn every epoch (seeded), so undersampling sees different majority images over
time instead of discarding the same ones for good.
"""

from __future__ import annotations

import numpy as np
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.utils.class_weight import compute_class_weight

from xraytrack.errors import XrayTrackError

STRATEGIES = ("none", "class_weight", "oversample", "undersample", "balanced_batches")


def check_strategies(names) -> tuple[str, ...]:
    names = tuple(names)
    for name in names:
        if name not in STRATEGIES:
            raise XrayTrackError(f"unknown balancing strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if not names:
        raise XrayTrackError(f"no strategy given; valid: {', '.join(STRATEGIES)}")
    return names


def balanced_class_weight(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """scikit-learn's 'balanced' weights: n_samples / (n_classes * count of the class)."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights)} | {
        c: 0.0 for c in range(n_classes) if c not in present
    }


def _resampled(sampler_cls, labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    sampler = sampler_cls(random_state=seed * 100_003 + epoch)
    positions, _ = sampler.fit_resample(np.arange(len(labels))[:, None], labels)
    return np.random.default_rng([seed, epoch]).permutation(positions[:, 0])


def _balanced_batches(labels: np.ndarray, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """As many batches as an unbalanced epoch, each drawn class by class in equal shares."""
    rng = np.random.default_rng([seed, epoch])
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    cursor = dict.fromkeys(classes, 0)
    n_batches = int(np.ceil(len(labels) / batch_size))
    order = []
    for _ in range(n_batches):
        share = np.full(len(classes), batch_size // len(classes))
        share[rng.choice(len(classes), batch_size % len(classes), replace=False)] += 1
        for c, k in zip(classes, share):
            pool = pools[c]
            take = [pool[(cursor[c] + i) % len(pool)] for i in range(k)]  # cycle minorities
            cursor[c] += k
            order.extend(take)
    return np.asarray(order)


def epoch_order(strategy: str, labels: np.ndarray, batch_size: int, seed: int):
    """The ``order_fn(epoch)`` for CachedImages, or None for the plain seeded shuffle."""
    if strategy == "oversample":
        return lambda epoch: _resampled(RandomOverSampler, labels, seed, epoch)
    if strategy == "undersample":
        return lambda epoch: _resampled(RandomUnderSampler, labels, seed, epoch)
    if strategy == "balanced_batches":
        return lambda epoch: _balanced_batches(labels, batch_size, seed, epoch)
    return None
