"""Classify a folder of new images with a logged or registered classifier."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd

from xraytrack.data.images import DECODE_ERRORS, IMAGE_EXTENSIONS, load_grayscale, resize
from xraytrack.data.index import NON_IMAGE_FOLDERS
from xraytrack.errors import XrayTrackError

log = logging.getLogger(__name__)


def find_images(paths: list[str]) -> list[Path]:
    """Files as given, and the image files under folders, recursively, in sorted order.

    Inside folders, lung masks (``masks/`` as in the Kaggle layout) are not X-rays and are left out.
    """
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(
                f for f in p.rglob("*")
                if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
                and not NON_IMAGE_FOLDERS.intersection(d.lower() for d in f.relative_to(p).parts[:-1])
            )
        elif p.is_file():
            found.append(p)
        else:
            raise XrayTrackError(f"{p} does not exist")
    if not found:
        raise XrayTrackError(f"no images found in {', '.join(paths)}")
    return found


def load_classifier(model_uri: str):
    try:
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    except mlflow.exceptions.MlflowException as exc:
        raise XrayTrackError(f"cannot load {model_uri}: {exc.message.splitlines()[0]}") from None


def predict_files(model_uri: str, paths: list[str], batch_size: int = 32):
    """Returns (predictions, skipped): unreadable files are reported, never fatal."""
    classifier = load_classifier(model_uri)
    files = find_images(paths)
    rows, skipped, frames = [], [], []
    bar = keras.utils.Progbar(len(files), unit_name="image")

    def flush(batch):
        if batch:
            out = classifier.predict_pixels(np.stack([px for _, px in batch]))
            out.insert(0, "path", [str(f) for f, _ in batch])
            frames.append(out)

    for i, f in enumerate(files, 1):
        try:
            rows.append((f, resize(load_grayscale(f), classifier.img_size)))
        except DECODE_ERRORS as exc:
            log.warning("skipping %s: %s", f, exc)
            skipped.append((str(f), f"{type(exc).__name__}: {exc}"))
        if len(rows) == batch_size:
            flush(rows)
            rows = []
        bar.update(i)
    flush(rows)
    columns = ["path", "label", *classifier.classes]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)), skipped
