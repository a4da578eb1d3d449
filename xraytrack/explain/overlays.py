"""Grad-CAM overlays of any image files for a model that was trained earlier."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt

from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize
from xraytrack.evaluation import plots
from xraytrack.explain import gradcam
from xraytrack.serving.predict import find_images
from xraytrack.tracking.loading import load_trained

log = logging.getLogger(__name__)


def explain_images(ref: str, paths: list[str], out_dir: str) -> list[Path]:
    """One overlay PNG per readable image, named after it, for the predicted class."""
    trained = load_trained(ref)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    files, _ = find_images(paths)  # skips are logged there
    for f in files:
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
