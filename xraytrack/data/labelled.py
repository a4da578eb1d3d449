"""A labelled set of images to evaluate on: class folders (Kaggle or flat layout) or a CSV.

    <dir>/<Class>/images/*.png | <dir>/<Class>/*.jpg | <dir>/<Class>/*.dcm
    <file>.csv (or <dir>/metadata.csv): path, label[, patient_id][, site]

Unlike a training set it may hold a single class, labels the model does not know
(``Other_pneumonia``) and several images of one patient; ``--label-map`` renames labels first
(``NORMAL=Normal,PNEUMONIA=Viral Pneumonia``). CSV paths are relative to the CSV's folder.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xraytrack.data.index import class_images, discover_classes
from xraytrack.errors import XrayTrackError

log = logging.getLogger(__name__)

METADATA = "metadata.csv"


@dataclass(frozen=True)
class LabelledFiles:
    """One row per image: path (relative to ``root``), label, and patient and site when known."""

    root: Path
    frame: pd.DataFrame  # columns: path, label, patient_id, site

    @property
    def has_patients(self) -> bool:
        return self.frame["patient_id"].notna().all()

    def digest(self) -> str:
        return hashlib.sha256(self.frame.to_csv(index=False).encode()).hexdigest()

    def check_labels(self, classes) -> None:
        """A set none of whose labels is a class of the model was scored as negatives only: a
        logged evaluation without a single metric, when the labels were only spelt otherwise."""
        labels = sorted(set(self.frame["label"]))
        if not set(labels) & set(classes):
            raise XrayTrackError(
                f"none of this set's labels ({', '.join(labels)}) is a class of the model "
                f"({', '.join(classes)}); rename them with --label-map, e.g. "
                f"'{labels[0]}={classes[0]}'")


def parse_label_map(text: str | None) -> dict[str, str]:
    """'NORMAL=Normal,PNEUMONIA=Viral Pneumonia' -> {'NORMAL': 'Normal', ...}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise XrayTrackError(f"--label-map expects OLD=NEW pairs, got {item!r}")
        mapping[old.strip()] = new.strip()
    return mapping


def _from_csv(csv_path: Path) -> LabelledFiles:
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise XrayTrackError(f"{csv_path} needs the columns path and label (missing: "
                             f"{', '.join(sorted(missing))})")
    for column in ("patient_id", "site"):
        if column not in frame:
            frame[column] = None
        else:
            frame[column] = frame[column].replace("", None)
    return LabelledFiles(csv_path.parent, frame[["path", "label", "patient_id", "site"]])


def _from_folders(root: Path) -> LabelledFiles:
    classes = discover_classes(root)
    if not classes:
        raise XrayTrackError(f"no class folders with images (PNG, JPEG or DICOM) found in {root}, "
                             f"and no {METADATA} with path and label columns")
    rows = [(f.relative_to(root).as_posix(), name) for name in classes
            for f in class_images(root / name)]
    frame = pd.DataFrame(rows, columns=["path", "label"]).assign(patient_id=None, site=None)
    return LabelledFiles(root, frame)


def read_labelled(source: str | Path, label_map: dict[str, str] | None = None) -> LabelledFiles:
    """The images of ``source`` with their (renamed) labels."""
    source = Path(source).expanduser().resolve()
    if not source.exists():
        raise XrayTrackError(f"{source} does not exist")
    if source.is_file():
        files = _from_csv(source)
    elif (source / METADATA).is_file() and _has_columns(source / METADATA):
        files = _from_csv(source / METADATA)
    else:
        files = _from_folders(source)
    if files.frame.empty:
        raise XrayTrackError(f"no images listed in {source}")
    frame = files.frame.assign(label=files.frame["label"].replace(label_map or {}))
    return LabelledFiles(files.root, frame.reset_index(drop=True))


def _has_columns(csv_path: Path) -> bool:
    header = pd.read_csv(csv_path, nrows=0).columns
    return {"path", "label"} <= set(header)
