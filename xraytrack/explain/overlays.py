"""Grad-CAM overlays of any image files for a model that was trained earlier."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import matplotlib.pyplot as plt

from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize
from xraytrack.data.index import printable
from xraytrack.evaluation import plots
from xraytrack.explain import gradcam
from xraytrack.serving.predict import find_images
from xraytrack.tracking.loading import load_trained

log = logging.getLogger(__name__)


def overlay_paths(files: list[Path], given: list[str], out: Path) -> list[Path]:
    """Where each file's overlay goes: ``out`` mirrors the folders under each folder given, so
    exports that reuse a name per study (``patient1/IM-0001.dcm``, ``patient2/IM-0001.dcm``)
    keep one overlay each; a name given twice gets a number."""
    folders = [Path(p) for p in given if Path(p).is_dir()]
    targets, taken = [], set()
    for f in files:
        root = next((d for d in folders if f.is_relative_to(d)), None)
        folder = out / f.relative_to(root).parent if root else out
        target, n = folder / f"{f.stem}_gradcam.png", 1
        while target in taken:
            n += 1
            target = folder / f"{f.stem}_{n}_gradcam.png"
        taken.add(target)
        targets.append(target)
    return targets


def explain_images(ref: str, paths: list[str], out_dir: str) -> list[Path]:
    """One overlay PNG per readable image, for the predicted class, written as it is made (an
    interruption keeps those done), with a progress bar."""
    trained = load_trained(ref)
    files, _ = find_images(paths)  # skips are logged there
    written = []
    bar = keras.utils.Progbar(len(files), unit_name="image")
    for i, (f, target) in enumerate(zip(files, overlay_paths(files, paths, Path(out_dir))), 1):
        if write_overlay(trained, f, target):
            written.append(target)
        bar.update(i)
    return written


def write_overlay(trained, source: Path, target: Path) -> bool:
    """The image with its heatmap and predicted class; False (and a logged skip) when the file
    cannot be decoded."""
    try:
        img = resize(load_grayscale(source), trained.img_size)
    except DECODE_ERRORS as exc:
        log.warning("skipping %s: %s", printable(source), exc)
        return False
    heat, probs = gradcam.gradcam(trained.model, img[None, ..., None])
    c = int(probs[0].argmax())
    fig = plots.overlay_figure(img[None], heat, [None],
                               [f"{source.name}\n{trained.classes[c]} ({probs[0, c]:.2f})"])
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return True
