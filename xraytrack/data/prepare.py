"""From a folder to a ready split: index, decode once into the cache, group duplicates, split."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

import numpy as np

from xraytrack.data import dedup
from xraytrack.data.cache import load_or_build
from xraytrack.data.index import DatasetIndex
from xraytrack.data.sequence import CachedImages
from xraytrack.data.split import Split, make_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """A split over the readable images, each mapped to its row of the pixel cache."""

    split: Split
    pixels: np.ndarray
    rows: np.ndarray  # cache row of each image of split.index
    skipped: list[dict]  # unreadable files: path, class, reason

    @property
    def classes(self) -> tuple[str, ...]:
        return self.split.index.classes

    def labels(self, name: str) -> np.ndarray:
        return self.split.index.labels[self.split.indices(name)]

    def paths(self, name: str) -> list[str]:
        return [self.split.index.paths[i] for i in self.split.indices(name)]

    def images(self, name: str) -> np.ndarray:
        """The split's images as an in-memory (N, S, S) uint8 array, in manifest order."""
        return np.asarray(self.pixels[self.rows[self.split.indices(name)]])

    def sequence(self, name: str, batch_size: int, shuffle: bool = False, seed: int = 0,
                 order_fn=None, shard: tuple[int, int] | None = None) -> CachedImages:
        idx = self.split.indices(name)
        return CachedImages(self.pixels, self.rows[idx], self.split.index.labels[idx],
                            len(self.classes), batch_size, shuffle=shuffle, seed=seed,
                            order_fn=order_fn, shard=shard)

    def skipped_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, ["path", "class", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.skipped)
        return buf.getvalue()


@dataclass(frozen=True)
class Readable:
    """The indexed images that decode, their cache rows, near-duplicate groups and skips."""

    index: DatasetIndex
    pixels: np.ndarray
    rows: np.ndarray
    groups: np.ndarray
    skipped: list[dict]


def read_images(index: DatasetIndex, img_size: int, dedup_distance: int,
                cache_dir: str | None = None) -> Readable:
    """Decode (once, into the cache) and group near-duplicates: everything before a split."""
    cache = load_or_build(index, img_size, cache_dir)
    skipped = [
        {"path": index.paths[i], "class": index.classes[index.labels[i]], "reason": reason}
        for i, reason in sorted(cache.errors.items())
    ]
    rows = np.flatnonzero(cache.readable)
    groups = dedup.group_near_duplicates(cache.hashes[rows], dedup_distance)
    return Readable(index.subset(rows), cache.pixels, rows, groups, skipped)


def prepare(index: DatasetIndex, img_size: int, val_fraction: float, test_fraction: float,
            seed: int, dedup_distance: int, cache_dir: str | None = None) -> PreparedData:
    found = read_images(index, img_size, dedup_distance, cache_dir)
    split = make_split(found.index, found.groups, val_fraction, test_fraction, seed)
    return PreparedData(split=split, pixels=found.pixels, rows=found.rows, skipped=found.skipped)


def describe(found: Readable) -> str:
    """Counts per class, duplicate groups and skipped files: a summary that needs no split."""
    counts = found.index.counts()
    width = max(len(c) for c in counts) + 2
    lines = [f"{'class':<{width}}{'images':>8}"]
    lines += [f"{c:<{width}}{n:>8}" for c, n in counts.items()]
    lines.append(_duplicates_line(found.groups))
    lines.append(f"skipped unreadable files: {len(found.skipped)}")
    return "\n".join(lines)


def _duplicates_line(groups: np.ndarray) -> str:
    sizes = np.bincount(groups) if len(groups) else np.zeros(0, dtype=int)
    dup = sizes[sizes > 1]
    return (f"near-duplicate groups: {len(dup)} holding {int(dup.sum())} images "
            f"(largest {int(dup.max()) if len(dup) else 0}); kept within one split")


def summarize(data: PreparedData) -> str:
    """Per-class counts by split, duplicate groups and skipped files, for the console and logs."""
    counts = data.split.counts()
    width = max(len(c) for c in data.classes) + 2
    lines = [f"{'class':<{width}}{'train':>8}{'val':>8}{'test':>8}{'total':>8}"]
    for c in data.classes:
        row = [counts[s][c] for s in ("train", "val", "test")]
        lines.append(f"{c:<{width}}" + "".join(f"{n:>8}" for n in row) + f"{sum(row):>8}")
    lines.append(_duplicates_line(data.split.groups))
    lines.append(f"skipped unreadable files: {len(data.skipped)}")
    return "\n".join(lines)
