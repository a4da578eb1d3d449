"""``xraytrack evaluate``: what a trained model scores on images from a site it never saw.

Everything is scored by ``metrics.scores`` (plus calibration and the validation-chosen
operating points), side by side with the same model's internal test split, each with a bootstrap
95% interval (patients resampled when known). One MLflow run per evaluation, tagged with the
source run and model; the dataset is logged as an input and the metrics are linked to the
logged model and to that dataset, so the model's page lists every site it was checked on.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd

from xraytrack.data.images import decode_files
from xraytrack.data.labelled import LabelledFiles, read_labelled
from xraytrack.data.logged import logged_test_images
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import bootstrap, metrics, operating_points, plots, reliability, shift
from xraytrack.evaluation.predictions import read_predictions
from xraytrack.evaluation.test_split import log_figure
from xraytrack.tracking import inputs, runs
from xraytrack.tracking.loading import TrainedModel, load_trained
from xraytrack.tracking.model_logging import CLASSIFIER
from xraytrack.tracking.registry import logged_model

log = logging.getLogger(__name__)


@dataclass
class SiteImages:
    """The readable images of a labelled set, their labels (-1: not a model class) and rows."""

    images: np.ndarray
    y: np.ndarray
    frame: pd.DataFrame  # the readable rows of the set, with path, label, patient_id, site
    skipped: list[tuple[str, str]]


def read_site(files: LabelledFiles, classes, img_size: int) -> SiteImages:
    """Decode every listed image; unreadable ones are logged skips, never fatal."""
    images, keep, skipped = decode_files(files.root, files.frame["path"], img_size)
    if not images:
        raise XrayTrackError(f"no readable image in {files.root}")
    frame = files.frame.iloc[keep].reset_index(drop=True)
    index = {c: i for i, c in enumerate(classes)}
    y = frame["label"].map(lambda label: index.get(label, -1)).to_numpy()
    return SiteImages(np.stack(images), y, frame, skipped)


def all_scores(y, probs, classes, thresholds) -> dict[str, float]:
    """The scoring function's numbers, calibration error and the fixed operating points."""
    return (metrics.scores(y, probs, classes) | reliability.calibration_scores(y, probs, classes)
            | operating_points.at_thresholds(y, probs, classes, thresholds))


def with_intervals(y, probs, classes, thresholds, n_boot: int, groups=None,
                   progress: bool = False) -> pd.DataFrame:
    """Columns value, lo, hi; one row per metric."""
    point = pd.Series(all_scores(y, probs, classes, thresholds), name="value")
    boots = bootstrap.resamples(len(y), n_boot, seed=0, groups=groups)
    ci = bootstrap.intervals(lambda b: all_scores(y[b], probs[b], classes, thresholds), boots,
                             progress)
    return pd.concat([point, ci], axis=1).loc[point.index]


def notes(site: SiteImages, classes) -> list[str]:
    out = []
    absent = [c for i, c in enumerate(classes) if not (site.y == i).any()]
    if absent:
        out.append(f"Not in this set, so no per-class metric: {', '.join(absent)}.")
    unknown = sorted(set(site.frame["label"][site.y < 0]))
    if unknown:
        k = int((site.y < 0).sum())
        out.append(f"Labels the model does not know, kept as negatives of every class "
                   f"(one vs rest): {', '.join(unknown)} ({k} image{'' if k == 1 else 's'}).")
        alike = [f"{u}={c}" for u in unknown for c in classes if u.lower() == c.lower()]
        if alike:
            out.append(f"If they are the same class, give --label-map '{','.join(alike)}'.")
    if site.skipped:
        n = len(site.skipped)
        out.append(f"{n} unreadable file{'' if n == 1 else 's'} skipped (skipped.csv).")
    return out


def _overlap(a: pd.Series, b: pd.Series) -> str:
    if np.isnan([a["lo"], a["hi"], b["lo"], b["hi"]]).any():
        return "n/a"
    return "yes" if not (a["hi"] < b["lo"] or b["hi"] < a["lo"]) else "**no**"


def generalization_table(internal: pd.DataFrame, site: pd.DataFrame, name: str) -> str:
    """Markdown: each metric defined in both, internal vs site, the difference, overlap."""
    rows = [m for m in site.index if m in internal.index
            and not np.isnan(site.at[m, "value"]) and not np.isnan(internal.at[m, "value"])]
    lines = [f"| metric | internal test [95% CI] | {name} [95% CI] | difference | intervals overlap |",
             "|---|---|---|---|---|"]
    for m in rows:
        i, s = internal.loc[m], site.loc[m]
        lines.append(f"| {m} | {i['value']:.3f} [{i['lo']:.3f}, {i['hi']:.3f}] | {s['value']:.3f} "
                     f"[{s['lo']:.3f}, {s['hi']:.3f}] | {s['value'] - i['value']:+.3f} | "
                     f"{_overlap(i, s)} |")
    return "\n".join(lines) + "\n"


def headline_sentence(internal: pd.DataFrame, site: pd.DataFrame, classes, name: str) -> str:
    """The number a reader wants first: each present class's one-vs-rest AUC, inside vs here."""
    parts = []
    for c in classes:
        key = f"auc_{metrics.metric_name(c)}"
        if key in site.index and not np.isnan(site.at[key, "value"]):
            s, i = site.loc[key], internal.loc[key]
            parts.append(f"{c}-vs-rest AUC {s['value']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}] at "
                         f"{name} against {i['value']:.3f} [{i['lo']:.3f}, {i['hi']:.3f}] on the "
                         f"internal test split (intervals overlap: {_overlap(i, s)})")
    return ("; ".join(parts) + ".") if parts else "No model class has positives and negatives here."


def _internal(trained: TrainedModel, n_boot: int):
    """The source run's own test predictions, calibrated as the served model would."""
    tested = read_predictions(trained.run_id, tuple(trained.classes))
    probs = trained.calibration.apply(tested.probs)
    thresholds = trained.calibration.thresholds
    return with_intervals(tested.y_true, probs, trained.classes, thresholds, n_boot)


def _shift(trained: TrainedModel, site: SiteImages, data_dir: str | None) -> float | None:
    """None (with a logged note) when the internal images are not on this machine."""
    try:
        _, internal_images, _, _ = logged_test_images(mlflow.get_run(trained.run_id), data_dir,
                                                      trained.img_size, trained.classes)
    except XrayTrackError as exc:
        log.warning("shift not measured: %s", exc)
        return None
    return shift.shift_auc(*shift.penultimate_features(trained.model, internal_images,
                                                       site.images))


def site_name(files: LabelledFiles, site: str | None) -> str:
    if site:
        return site
    named = files.frame["site"].dropna().unique()
    return str(named[0]) if len(named) == 1 else files.root.name


def evaluate_site(ref: str, source: str, site: str | None = None, label_map=None,
                  n_boot: int = 1000, experiment: str = "xraytrack",
                  data_dir: str | None = None, nested: bool = False,
                  tags: dict | None = None) -> str:
    """Returns the evaluation run's id. Input problems raise before any run starts. ``nested``
    makes the run a child of the active one (a comparison's strategies)."""
    trained = load_trained(ref)
    files = read_labelled(source, label_map)
    files.check_labels(trained.classes)
    name = site_name(files, site)
    images = read_site(files, trained.classes, trained.img_size)
    n = len(images.y)
    print(f"Scoring {name}: {n} image{'' if n == 1 else 's'}, then {n_boot} bootstrap resamples")
    for note in notes(images, trained.classes):  # in the report too; here before minutes of work
        print(note)
    raw = trained.model.predict(images.images[..., None].astype("float32"))  # with a bar
    probs = trained.calibration.apply(raw)
    thresholds = trained.calibration.thresholds
    groups = images.frame["patient_id"].to_numpy() if files.has_patients else None
    here = with_intervals(images.y, probs, trained.classes, thresholds, n_boot, groups,
                          progress=True)
    internal = _internal(trained, n_boot)
    drift = _shift(trained, images, data_dir)
    with runs.tracked_run(experiment, f"evaluate-{name}", nested=nested) as run:
        mlflow.set_tags(tags or {})
        _log(trained, ref, files, images, probs, here, internal, drift, name, groups is not None)
        print(headline_sentence(internal, here, trained.classes, name))
        print(f"MLflow run {run.info.run_id} (experiment {run.info.experiment_id})")
        return run.info.run_id


def _log(trained, ref, files, images: SiteImages, probs, here, internal, drift, name: str,
         by_patient: bool) -> None:
    mlflow.set_tags({"xraytrack.role": "evaluation", "xraytrack.source_run": trained.run_id,
                     "xraytrack.model": ref, "xraytrack.site": name})
    mlflow.log_params({"eval.source": str(files.root), "eval.n_images": len(images.y),
                       "eval.n_skipped": len(images.skipped), "eval.digest": files.digest(),
                       "eval.bootstrap_unit": "patient" if by_patient else "image",
                       "eval.temperature": trained.calibration.temperature})
    with warnings.catch_warnings():  # MLflow 3.17 registers its local source twice and says so
        warnings.filterwarnings("ignore", message="The specified dataset source")
        dataset = mlflow.data.from_pandas(images.frame, source=files.root.as_uri(), name=name,
                                          targets="label")
    inputs.log_input(dataset, context="evaluation")
    values = metrics.prefixed(here["value"].to_dict(), "")
    classifier = logged_model(mlflow.get_run(trained.run_id), CLASSIFIER)  # what is served
    mlflow.log_metrics(values, model_id=classifier.model_id, dataset=dataset)
    bounds = {f"{m}_{side}": here.at[m, side] for m in values for side in ("lo", "hi")}
    mlflow.log_metrics(metrics.prefixed(bounds, ""))
    mlflow.log_metrics(metrics.prefixed(internal["value"].to_dict(), "internal_"))
    if drift is not None:
        mlflow.log_metric("shift_auc", drift)
    _log_artifacts(trained, images, probs, here, internal, drift, name)


def _log_artifacts(trained, images: SiteImages, probs, here, internal, drift, name) -> None:
    classes = trained.classes
    frame = images.frame[["path", "label", "patient_id"]].assign(
        predicted=[classes[i] for i in probs.argmax(axis=1)])
    for c, cls in enumerate(classes):
        frame[cls] = probs[:, c]
    mlflow.log_text(frame.to_csv(index=False), "predictions.csv")
    confusion = pd.crosstab(frame["label"], frame["predicted"]).reindex(columns=classes, fill_value=0)
    mlflow.log_text(confusion.to_csv(), "confusion_matrix.csv")
    mlflow.log_text(pd.DataFrame(images.skipped, columns=["path", "reason"]).to_csv(index=False),
                    "skipped.csv")
    ops = here.filter(like="_at_sens", axis=0)
    mlflow.log_text(pd.concat({"internal": internal.filter(like="_at_sens", axis=0), name: ops},
                              axis=1).to_csv(), "operating_points.csv")
    log_figure(plots.roc_figure(images.y, probs, classes), "roc_curves.png")
    log_figure(reliability.reliability_figure(images.y, {name: probs}, classes,
                                              f"Reliability at {name} (calibrated)"),
               "reliability.png")
    text = [f"# {name}: internal test vs this site\n",
            headline_sentence(internal, here, classes, name) + "\n",
            *[n + "\n" for n in notes(images, classes)],
            (shift.describe(drift) if drift is not None else
             "Shift not measured: the internal test images were not found on this machine.") + "\n",
            "Probabilities are temperature-scaled (T fitted on the validation split); operating "
            "points (`*_at_sens0.90`, `*_at_sens0.95`) are the thresholds that reached that "
            "sensitivity on the validation split, applied here unchanged.\n",
            generalization_table(internal, here, name)]
    mlflow.log_text("\n".join(text), "generalization.md")


@dataclass(frozen=True)
class SitePredictions:
    """An evaluation run's ``predictions.csv`` back: labels as class indices (-1: not a model
    class), calibrated probabilities, and the rows' paths and patients (None when unknown)."""

    y: np.ndarray
    probs: np.ndarray
    paths: list[str]
    groups: np.ndarray | None


def read_site_predictions(run_id: str, classes) -> SitePredictions:
    """What ``_log_artifacts`` wrote, read back for a paired comparison of models on the site."""
    frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/predictions.csv")),
                        dtype={"path": str, "label": str, "patient_id": str})
    index = {c: i for i, c in enumerate(classes)}
    patients = frame["patient_id"]
    return SitePredictions(frame["label"].map(lambda label: index.get(label, -1)).to_numpy(),
                           frame[list(classes)].to_numpy(), frame["path"].tolist(),
                           patients.to_numpy() if patients.notna().all() else None)


def read_site_scores(run_id: str) -> pd.DataFrame:
    """An evaluation run's scores back as ``value, lo, hi`` rows (what ``_log`` wrote): every
    metric logged with its interval, the internal ones and the shift left out."""
    logged = mlflow.get_run(run_id).data.metrics
    names = [m for m in logged if f"{m}_lo" in logged and f"{m}_hi" in logged
             and not m.startswith("internal_")]
    return pd.DataFrame({"value": [logged[m] for m in names], "lo": [logged[f"{m}_lo"] for m in names],
                         "hi": [logged[f"{m}_hi"] for m in names]}, index=names)
