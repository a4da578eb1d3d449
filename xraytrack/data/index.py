"""Find the images of a CXR dataset on disk, in the Kaggle layout or a flat one.

Kaggle layout:  <data_dir>/<Class>/images/*.png  (plus masks/ and metadata, never read)
Flat layout:    <data_dir>/<Class>/*.png
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xraytrack.data.images import IMAGE_EXTENSIONS
from xraytrack.errors import XrayTrackError

log = logging.getLogger(__name__)

# Sub-folders that hold something other than the X-rays themselves.
NON_IMAGE_FOLDERS = frozenset({"masks", "mask", "lung_masks", "infection_masks"})


@dataclass(frozen=True)
class DatasetIndex:
    """Image paths (relative to ``root``, POSIX style) with integer labels into ``classes``."""

    root: Path
    classes: tuple[str, ...]
    paths: tuple[str, ...]
    labels: np.ndarray

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    def subset(self, keep: np.ndarray) -> "DatasetIndex":
        keep = np.asarray(keep)
        return DatasetIndex(
            self.root, self.classes, tuple(np.asarray(self.paths, dtype=object)[keep]), self.labels[keep]
        )


def printable(path) -> str:
    """A path as text that any terminal or CSV takes: bytes that are not UTF-8 shown escaped."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def unusable(path: Path) -> str | None:
    """Why a file with an image extension cannot be used, or None when it can."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link to nothing"
    if path.is_dir():
        return "a folder, not a file"
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 (rename it)"
    return None


def image_files(candidates) -> tuple[list[Path], list[tuple[str, str]]]:
    """The candidates with an image extension that can be read, sorted, and the others with why."""
    found, skipped = [], []
    for p in sorted(candidates):
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        why = unusable(p)
        if why is None:
            found.append(p)
        else:
            skipped.append((printable(p), why))
    return found, skipped


def _image_files(folder: Path) -> list[Path]:
    found, skipped = image_files(folder.iterdir())
    for path, why in skipped:
        log.warning("skipping %s: %s", path, why)
    return found


def class_images(class_dir: Path) -> list[Path]:
    """The X-rays of one class folder: its ``images/`` sub-folder if it has one, else its files."""
    images_dir = class_dir / "images"
    if images_dir.is_dir():
        return _image_files(images_dir)
    return _image_files(class_dir)


def _folder_verdicts(root: Path) -> list[tuple[str, str | None]]:
    """(folder name, why it is not a class or None) for every sub-folder, in sorted order."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name.lower() in NON_IMAGE_FOLDERS:
            out.append((d.name, "a masks folder is not a class of X-rays"))
        elif class_images(d):
            out.append((d.name, None))
        else:
            out.append((d.name, "no images in it (or in its images/ folder)"))
    return out


def skipped_folders(root: Path) -> list[tuple[str, str]]:
    """Sub-folders that are not classes, with the reason: an empty class folder, say."""
    return [(name, why) for name, why in _folder_verdicts(Path(root)) if why]


def discover_classes(root: Path, warn: bool = True) -> list[str]:
    """Class folders under ``root`` in sorted order, so label ids never depend on the file system."""
    found = []
    for name, why in _folder_verdicts(root):
        if why is None:
            found.append(name)
        elif warn:
            log.warning("skipping %s: %s", root / name, why)
    return found


def _check_root(root: Path) -> None:
    if not root.exists():
        raise XrayTrackError(f"data_dir {root} does not exist")
    if not root.is_dir():
        raise XrayTrackError(f"data_dir {root} is not a folder")


def _no_classes_message(root: Path) -> str:
    nested = [d for d in sorted(root.iterdir()) if d.is_dir() and discover_classes(d, warn=False)]
    hint = f"; did you mean {nested[0]}?" if nested else ""
    return f"no class folders with images found in {root}{hint}"


def _sample(files: list[Path], limit: int, rng: np.random.Generator) -> list[Path]:
    """A seeded random sample: the first N by name often come from a single source."""
    if limit <= 0 or len(files) <= limit:
        return files
    keep = np.sort(rng.choice(len(files), size=limit, replace=False))
    return [files[i] for i in keep]


def index_dataset(
    data_dir: str | Path,
    classes: list[str] | tuple[str, ...] | None = None,
    limit_per_class: int = 0,
    seed: int = 0,
) -> DatasetIndex:
    """Index ``data_dir``; ``classes`` picks a subset and fixes label order (default: sorted)."""
    root = Path(data_dir).expanduser().resolve()
    _check_root(root)
    if classes:
        missing = [c for c in classes if not (root / c).is_dir()]
        if missing:
            known = ", ".join(discover_classes(root, warn=False)) or "none"
            raise XrayTrackError(f"unknown class {missing[0]!r} in {root} (found: {known})")
        if len(set(classes)) != len(classes):
            raise XrayTrackError(f"classes listed twice: {list(classes)}")
    else:
        classes = discover_classes(root)
        if not classes:
            raise XrayTrackError(_no_classes_message(root))
    if len(classes) < 2:
        raise XrayTrackError(f"need at least two classes to classify, got {list(classes)}")

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = class_images(root / name)
        if not files:
            raise XrayTrackError(f"class {name!r} has no images in {root / name}")
        for f in _sample(files, limit_per_class, rng):
            paths.append(f.relative_to(root).as_posix())
            labels.append(label)
    return DatasetIndex(root, tuple(classes), tuple(paths), np.asarray(labels, dtype=np.int64))
