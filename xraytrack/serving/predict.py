"""Classify a folder of new images with a logged or registered classifier."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize
from xraytrack.data.index import NON_IMAGE_FOLDERS, image_files, printable
from xraytrack.errors import XrayTrackError
from xraytrack.tracking.loading import RUN_ID
from xraytrack.tracking.model_logging import CLASSIFIER
from xraytrack.tracking.registry import logged_model_uri

log = logging.getLogger(__name__)


def find_images(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, and the image files under folders, recursively, in sorted order; and the
    files skipped on the way with the reason (a dangling link, a folder named ``x.png``, a name
    that is not UTF-8).

    Inside folders, lung masks (``masks/`` as in the Kaggle layout) are not X-rays and are left out.
    """
    found, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            files, skips = image_files(
                f for f in p.rglob("*")
                if not NON_IMAGE_FOLDERS.intersection(d.lower() for d in f.relative_to(p).parts[:-1]))
            found += files
            skipped += skips
        elif p.is_file():
            found.append(p)
        else:
            raise XrayTrackError(f"{printable(p)} does not exist")
    for path, why in skipped:
        log.warning("skipping %s: %s", path, why)
    if not found:
        raise XrayTrackError(f"no images (PNG, JPEG, DICOM) found in {', '.join(paths)}")
    return found, skipped


def load_classifier(model_ref: str):
    """The served classifier of a run id or a model URI: what `mlflow models serve` would run, so
    a file gets the same answer from `predict` as over HTTP."""
    try:
        uri = (logged_model_uri(mlflow.get_run(model_ref), CLASSIFIER) if RUN_ID.match(model_ref)
               else model_ref)
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise XrayTrackError(f"cannot load {model_ref}: {exc.message.splitlines()[0]}") from None
    try:
        return model.unwrap_python_model()
    except MlflowException:  # a model of another flavour, say the run's Keras network (`model`)
        raise XrayTrackError(
            f"{model_ref} is not an xraytrack classifier: give a run id, a registered "
            f"models:/NAME@ALIAS or a run's runs:/RUN_ID/{CLASSIFIER}") from None


def predict_batches(classifier, files: list[Path], batch_size: int,
                    skipped: list) -> Iterator[pd.DataFrame]:
    """Predictions batch by batch, with a progress bar; unreadable files go to ``skipped``."""
    bar = keras.utils.Progbar(len(files), unit_name="image")
    rows = []
    for i, f in enumerate(files, 1):
        try:
            rows.append((f, resize(load_grayscale(f), classifier.img_size)))
        except DECODE_ERRORS as exc:
            log.warning("skipping %s: %s", printable(f), exc)
            skipped.append((printable(f), f"{type(exc).__name__}: {exc}"))
        if rows and (len(rows) == batch_size or i == len(files)):
            out = classifier.predict_pixels(np.stack([px for _, px in rows]))
            out.insert(0, "path", [printable(f) for f, _ in rows])
            rows = []
            yield out
        bar.update(i)


def predict_to_csv(model_ref: str, paths: list[str], out: str | Path,
                   batch_size: int = 32) -> tuple[int, list[tuple[str, str]]]:
    """Write predictions to ``out`` as they are made, so an interruption or a failure keeps
    every row already predicted. Returns (rows written, skipped files with reasons)."""
    folder = Path(out).parent
    if folder.exists() and not folder.is_dir():
        raise XrayTrackError(f"cannot write {printable(out)}: {printable(folder)} is a file")
    folder.mkdir(parents=True, exist_ok=True)  # before the slow model load
    classifier = load_classifier(model_ref)
    files, skipped = find_images(paths)
    written = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow(["path", "label", *classifier.classes])
        for frame in predict_batches(classifier, files, batch_size, skipped):
            frame.to_csv(fh, header=False, index=False)
            fh.flush()
            written += len(frame)
    return written, skipped
