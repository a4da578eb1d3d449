"""Shortcut audit: does the model still classify with the lungs hidden? (DeGrave et al. 2021)

Each class of this database comes from its own hospitals and sources, so a model can score well
by recognising the source (borders, text, markers, exposure) instead of the lungs. The audit
re-scores the test split twice: ``lungs_removed`` (lung region filled with the image mean) and
``lungs_only`` (everything else filled), and measures how much Grad-CAM mass falls in the lungs.

A model is flagged when, with the lungs removed, its balanced accuracy stays at least
``MIN_MARGIN`` above chance and keeps at least ``MIN_RETAINED`` of its above-chance skill.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import matplotlib.pyplot as plt
import mlflow
import numpy as np

from xraytrack.data.logged import logged_test_images
from xraytrack.evaluation import bootstrap, metrics, plots
from xraytrack.explain import gradcam, lungs
from xraytrack.tracking import runs
from xraytrack.tracking.loading import load_trained

log = logging.getLogger(__name__)

MIN_MARGIN = 0.15
MIN_RETAINED = 0.5
N_BOOT = 200  # intervals of the lungs-removed scores: enough to compare strategies side by side


@dataclass
class AuditResult:
    metrics: dict[str, float]
    flagged: bool
    text: str


def _headline(y, probs, classes, prefix: str) -> dict[str, float]:
    return metrics.prefixed(metrics.headline(metrics.scores(y, probs, classes)), prefix)


def _intervals(y, probs, prefix: str) -> dict[str, float]:
    """Bootstrap 95% intervals (``<prefix><metric>_lo/_hi``) of the balanced accuracy and macro
    AUC, so that two models' audits can be told apart or not."""
    def score(index):
        return metrics.balanced_accuracy_and_macro_auc(y[index], probs[index])

    frame = bootstrap.intervals(score, bootstrap.resamples(len(y), N_BOOT, seed=0))
    return {f"{prefix}{m}_{side}": float(frame.at[m, side]) for m in frame.index
            for side in ("lo", "hi") if not np.isnan(frame.at[m, side])}


def _sample_per_class(y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def verdict(plain_bal: float, removed_bal: float, n_classes: int) -> tuple[bool, float]:
    chance = 1.0 / n_classes
    retained = (removed_bal - chance) / (plain_bal - chance) if plain_bal > chance else 0.0
    return (removed_bal - chance >= MIN_MARGIN and retained >= MIN_RETAINED), retained


def audit(model: keras.Model, images: np.ndarray, y: np.ndarray, probs: np.ndarray, classes,
          regions: np.ndarray, from_mask: np.ndarray, batch_size: int = 32,
          gradcam_per_class: int = 25) -> AuditResult:
    """images: (N, S, S) uint8 test images; probs: the model's predictions for them, made once by
    the caller; regions: their boolean lung regions."""
    def predict(x):
        return model.predict(x[..., None].astype("float32"), batch_size=batch_size, verbose=0)

    out = _headline(y, probs, classes, "audit_plain_")
    removed = predict(lungs.occlude(images, regions, keep="outside"))
    out |= _headline(y, removed, classes, "audit_lungs_removed_")
    out |= _intervals(y, removed, "audit_lungs_removed_")
    out |= _headline(y, predict(lungs.occlude(images, regions, keep="lungs")), classes,
                     "audit_lungs_only_")
    sample = _sample_per_class(y, gradcam_per_class)
    heat, _ = gradcam.gradcam(model, images[sample][..., None], classes=y[sample])
    share = gradcam.lung_share(heat, regions[sample])
    for c, name in enumerate(classes):
        values = share[y[sample] == c]
        if len(values) and not np.isnan(values).all():
            out[f"audit_gradcam_lung_share_{metrics.metric_name(name)}"] = float(np.nanmean(values))
    out["audit_gradcam_lung_share"] = float(np.nanmean(share))
    out["audit_mask_coverage"] = float(from_mask.mean())
    flagged, retained = verdict(out["audit_plain_balanced_accuracy"],
                                out["audit_lungs_removed_balanced_accuracy"], len(classes))
    out["audit_lungs_removed_retained_skill"] = float(retained)
    out["audit_shortcut_flag"] = float(flagged)
    crop = crop_sentence(gradcam.input_window(model), images.shape[1:3])
    return AuditResult(out, flagged, report(out, classes, flagged, retained, crop))


def crop_sentence(window, size) -> str:
    """For a model that crops before it looks (``border_crop``, ``lung_crop``): where, since its
    attention can fall only there and a crop inside the lung box makes the share high by itself."""
    top, bottom, left, right = window
    height, width = size
    if (top, bottom, left, right) == (0, height, 0, width):
        return ""
    return (f"This model crops its input before it looks (rows {top / height:.0%}-"
            f"{bottom / height:.0%}, columns {left / width:.0%}-{right / width:.0%} of the "
            "image), so its attention can fall only there. ")


def report(m: dict[str, float], classes, flagged: bool, retained: float, crop: str = "") -> str:
    chance = 1.0 / len(classes)
    lead = "**Shortcut warning.** " if flagged else "**No shortcut flagged.** "
    verdict = (
        "A model that classifies this well without the lungs is using other cues (image borders, "
        "text, markers, exposure, patient age): in this database every class comes from its own "
        "sources, so such scores measure source recognition as much as disease. "
        if flagged else
        "Hiding the lungs takes away most of its skill, as it should for a model that reads the "
        "lungs; whatever ranking ability is left without them (the macro AUC above 0.5) comes from "
        "outside the lung region. ")
    return (
        f"{lead}On the test split this model reaches balanced accuracy "
        f"{m['audit_plain_balanced_accuracy']:.3f} (macro-F1 {m['audit_plain_macro_f1']:.3f}, "
        f"macro AUC {m['audit_plain_macro_auc']:.3f}). With the lungs removed it reaches "
        f"{m['audit_lungs_removed_balanced_accuracy']:.3f} (chance is {chance:.3f}; macro AUC "
        f"{m['audit_lungs_removed_macro_auc']:.3f}), keeping {retained:.0%} of its above-chance "
        f"balanced accuracy; with only the lungs visible it reaches "
        f"{m['audit_lungs_only_balanced_accuracy']:.3f}. On average "
        f"{m['audit_gradcam_lung_share']:.0%} of its Grad-CAM attention falls inside the lung "
        f"region. {crop}{verdict}Lung regions came from the dataset's masks for "
        f"{m['audit_mask_coverage']:.0%} of the images and from the fixed central box "
        f"{lungs.FALLBACK_BOX} (top, bottom, left, right fractions) for the rest. The flag needs "
        f"balanced accuracy without the lungs at least {MIN_MARGIN:.2f} above chance and at "
        f"least {MIN_RETAINED:.0%} of the above-chance skill kept.\n"
    )


def overlay_grid(model, images, y, probs, classes, regions, per_class: int = 2) -> plt.Figure:
    """Grad-CAM overlays for a few correct and a few wrong test images of each class."""
    pred = probs.argmax(axis=1)
    picks = []
    for c in range(len(classes)):
        for correct in (True, False):
            idx = np.flatnonzero((y == c) & ((pred == y) == correct))[:per_class]
            picks += list(idx)
    picks = np.asarray(picks, dtype=int)
    heat, _ = gradcam.gradcam(model, images[picks][..., None])
    return plots.overlay_figure(images[picks], heat, regions[picks],
                                [f"true {classes[y[i]]}\npred {classes[pred[i]]} "
                                 f"({probs[i, pred[i]]:.2f})" for i in picks])


def run_and_log(model, images, y, probs, classes, regions, from_mask, batch_size=32) -> AuditResult:
    """The audit and the overlay grid, logged into the active run."""
    result = audit(model, images, y, probs, classes, regions, from_mask, batch_size)
    mlflow.log_metrics(result.metrics)
    mlflow.log_text(result.text, "audit.md")
    mlflow.set_tag("xraytrack.audit", "shortcut" if result.flagged else "ok")
    fig = overlay_grid(model, images, y, probs, classes, regions)
    mlflow.log_figure(fig, "gradcam_overlays.png")
    plt.close(fig)
    log.info("audit: %s", result.text.split(".")[0])
    return result


def audit_run(ref: str, data_dir: str | None = None, batch_size: int = 32) -> AuditResult:
    """Audit a trained model (run id or model URI) on its own test split, into its run."""
    trained = load_trained(ref)
    run = mlflow.get_run(trained.run_id)
    root, images, y, paths = logged_test_images(run, data_dir, trained.img_size, trained.classes)
    regions, from_mask = lungs.lung_regions(root, paths, trained.img_size)
    probs = trained.model.predict(images[..., None].astype("float32"), batch_size=batch_size,
                                  verbose=0)
    with runs.reopened_run(trained.run_id):
        return run_and_log(trained.model, images, y, probs, tuple(trained.classes), regions,
                           from_mask, batch_size)
