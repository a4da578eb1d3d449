"""Seeded, stratified, duplicate-aware train/val/test split, persisted as ``split.csv``.

``Split.to_csv`` writes the manifest every run logs and ``read_manifest`` reads it back (see
``data.logged``), so a later audit or evaluation sees exactly the images the run was tested on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from xraytrack.data.index import DatasetIndex
from xraytrack.errors import XrayTrackError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ARTIFACT = "split.csv"  # the manifest's name among a run's artifacts


@dataclass(frozen=True)
class Split:
    """Which split each image of ``index`` is in, and which near-duplicate group it belongs to."""

    index: DatasetIndex
    assignment: np.ndarray  # one of SPLITS per image
    groups: np.ndarray

    def indices(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.assignment == name)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            s: {c: int(((self.assignment == s) & (self.index.labels == i)).sum())
                for i, c in enumerate(self.index.classes)}
            for s in SPLITS
        }

    def to_frame(self) -> pd.DataFrame:
        """The manifest: one row per image with its path, class, split and duplicate group."""
        return pd.DataFrame({
            "path": self.index.paths,
            "class": [self.index.classes[i] for i in self.index.labels],
            "split": self.assignment,
            "group": self.groups,
        })

    def to_csv(self) -> str:
        return self.to_frame().to_csv(index=False, lineterminator="\n")

    def digest(self) -> str:
        return hashlib.sha256(self.to_csv().encode()).hexdigest()


def _fold_count(val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Fewest equal folds that express both fractions exactly: 0.15/0.15 -> 3 + 3 of 20."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise XrayTrackError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
            "and leave some data for training"
        )
    v = Fraction(val_fraction).limit_denominator(100)
    t = Fraction(test_fraction).limit_denominator(100)
    k = int(np.lcm(v.denominator, t.denominator))
    return k, int(v * k), int(t * k)


def make_split(
    index: DatasetIndex,
    groups: np.ndarray,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """Assign whole duplicate groups to splits, keeping class proportions in each split.

    scikit-learn's StratifiedGroupKFold balances classes across k equal folds while keeping each
    group in one fold; whole folds are then dealt to test, val and train.
    """
    k, n_val, n_test = _fold_count(val_fraction, test_fraction)
    n_groups = len(np.unique(groups))
    if n_groups < k or np.bincount(index.labels).max() < k:
        raise XrayTrackError(
            f"only {n_groups} distinct images, too few for a {k}-fold "
            f"{1 - val_fraction - test_fraction:.0%}/{val_fraction:.0%}/{test_fraction:.0%} split"
        )
    _note_small_classes(index, k)
    folds = np.empty(len(groups), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # said once, in our words, by _note_small_classes
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        folds_of = splitter.split(np.zeros(len(groups)), index.labels, groups)
        for fold, (_, held) in enumerate(folds_of):
            folds[held] = fold
    assignment = np.where(folds < n_test, "test", np.where(folds < n_test + n_val, "val", "train"))
    split = Split(index=index, assignment=assignment.astype(object), groups=groups)
    _check_every_class_trains(split)
    return split


def _note_small_classes(index: DatasetIndex, k: int) -> None:
    """A class with fewer images than folds cannot be dealt evenly (an external site's 18
    images, say): the split still works, its val and test counts just round more coarsely."""
    for cls, n in zip(index.classes, np.bincount(index.labels, minlength=len(index.classes))):
        if n < k:
            log.warning("class %r has %d images, fewer than the split's %d folds: its val and "
                        "test counts are rounded more coarsely", cls, n, k)


def _check_every_class_trains(split: Split) -> None:
    for cls, n in split.counts()["train"].items():
        if n == 0:
            raise XrayTrackError(f"class {cls!r} has too few images to appear in the training split")


def read_manifest(text: str) -> pd.DataFrame:
    """A manifest as ``Split.to_csv`` wrote it: path, class, split and group, one row per image."""
    return pd.read_csv(io.StringIO(text), dtype={"path": str, "class": str, "split": str},
                       keep_default_na=False)

