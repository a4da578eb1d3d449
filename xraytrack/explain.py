"""Grad-CAM overlays and the shortcut audit for a model that was trained earlier."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from xraytrack import audit, gradcam, lungs, plots
from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize
from xraytrack.errors import XrayTrackError
from xraytrack.loading import load_trained
from xraytrack.predict import find_images

log = logging.getLogger(__name__)


def explain_images(ref: str, paths: list[str], out_dir: str) -> list[Path]:
    """One overlay PNG per readable image, named after it, for the predicted class."""
    trained = load_trained(ref)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in find_images(paths):
        try:
            img = resize(load_grayscale(f), trained.img_size)
        except DECODE_ERRORS as exc:
            log.warning("skipping %s: %s", f, exc)
            continue
        heat, probs = gradcam.gradcam(trained.model, img[None, ..., None])
        c = int(probs[0].argmax())
        fig = plots.overlay_figure(img[None], heat, [None],
                                   [f"{f.name}\n{trained.classes[c]} ({probs[0, c]:.2f})"])
        target = out / f"{f.stem}_gradcam.png"
        fig.savefig(target, dpi=120)
        plt.close(fig)
        written.append(target)
    return written


def _test_images(run: mlflow.entities.Run, data_dir: str | None, img_size: int, classes):
    """Re-read the run's test split from its split.csv (same paths, same order)."""
    root = Path(data_dir or run.data.params.get("cfg.data_dir", ""))
    if not root.is_dir():
        raise XrayTrackError(f"data_dir {root} not found; pass --data-dir")
    split = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/split.csv")))
    test = split[split["split"] == "test"]
    images, labels, paths = [], [], []
    for path, cls in zip(test["path"], test["class"]):
        try:
            images.append(resize(load_grayscale(root / path), img_size))
        except (*DECODE_ERRORS, FileNotFoundError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        labels.append(classes.index(cls))
        paths.append(path)
    return root, np.stack(images), np.asarray(labels), paths


def audit_run(ref: str, data_dir: str | None = None, batch_size: int = 32) -> audit.AuditResult:
    """Audit a trained model on its own test split and log the result into its run."""
    trained = load_trained(ref)
    run = mlflow.get_run(trained.run_id)
    root, images, y, paths = _test_images(run, data_dir, trained.img_size, trained.classes)
    regions, from_mask = lungs.lung_regions(root, paths, trained.img_size)
    probs = trained.model.predict(images[..., None].astype("float32"), batch_size=batch_size,
                                  verbose=0)
    try:
        with mlflow.start_run(run_id=trained.run_id):
            return audit.run_and_log(trained.model, images, y, probs, tuple(trained.classes),
                                     regions, from_mask, batch_size)
    finally:
        # Adding the audit, or failing to, must not change how the run ended or how long it took.
        mlflow.MlflowClient().set_terminated(run.info.run_id, run.info.status,
                                             end_time=run.info.end_time)
