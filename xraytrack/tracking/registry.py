"""Pick the best finished run of an experiment and register its image classifier as 'champion'."""

from __future__ import annotations

import mlflow
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion

from xraytrack.errors import XrayTrackError
from xraytrack.evaluation.metrics import HEADLINE
from xraytrack.tracking.model_logging import CLASSIFIER
from xraytrack.tracking.store import redact


def metric_mode(metric: str) -> str:
    """Losses and error rates are minimised; scores (accuracy, F1, AUC, ...) maximised."""
    return "min" if any(w in metric.lower() for w in ("loss", "error")) else "max"


def best_run(experiment: str, metric: str, mode: str = "auto") -> Run:
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        known = ", ".join(repr(e.name) for e in mlflow.search_experiments()) or "none"
        raise XrayTrackError(f"no experiment named {experiment!r} in {redact(mlflow.get_tracking_uri())} "
                             f"(experiments there: {known}); pass --experiment")
    mode = metric_mode(metric) if mode == "auto" else mode
    finished = mlflow.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'FINISHED'", output_format="list"
    )
    if not finished:
        raise XrayTrackError(f"experiment {experiment!r} has no FINISHED run")
    scored = [r for r in finished if metric in r.data.metrics]
    if not scored:
        raise XrayTrackError(f"no FINISHED run of {experiment!r} has the metric {metric!r}")
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.data.metrics[metric])


def logged_model(run: Run, name: str):
    """The model a run logged under ``name``: 'model' (Keras flavour) or 'classifier' (images in)."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND name = '{name}'",
        output_format="list",
    )
    if not models:
        raise XrayTrackError(f"run {run.info.run_id} logged no '{name}' model")
    return models[0]


def logged_model_uri(run: Run, name: str) -> str:
    return logged_model(run, name).model_uri


def model_card(run: Run, metric: str) -> str:
    p, m = run.data.params, run.data.metrics
    scores = ", ".join(f"{k} {m['test_' + k]:.3f}" for k in HEADLINE if f"test_{k}" in m)
    return (
        f"Chest X-ray classifier ({p.get('cfg.architecture', '?')}, {p.get('cfg.img_size', '?')} px) "
        f"from run {run.info.run_id}, chosen by {metric} = {m[metric]:.4f}.\n\n"
        f"Data: {p.get('cfg.data_dir', '?')}; split digest {p.get('data.split_digest', '?')} "
        f"({p.get('data.n_train')} train / {p.get('data.n_val')} val / {p.get('data.n_test')} test).\n"
        f"Classes: {p.get('cfg.classes', '?')}.\n"
        f"Test metrics: {scores}.\n\n"
        "Input: base64 PNG/JPEG in column 'image'; output: label and one probability per class.\n"
        "Intended use: research and teaching only. NOT for diagnosis or any clinical decision: "
        "the classes of this database come from different hospitals and sources, so a model can "
        "score well by recognising the source rather than the disease."
    )


def register_best(experiment: str, metric: str, name: str, mode: str = "auto",
                  alias: str = "champion") -> tuple[Run, ModelVersion]:
    run = best_run(experiment, metric, mode)
    version = mlflow.register_model(logged_model_uri(run, CLASSIFIER), name)
    client = mlflow.MlflowClient()
    client.update_model_version(name, version.version, description=model_card(run, metric))
    tags = {k: f"{v:.4f}" for k, v in run.data.metrics.items() if k.startswith("test_")}
    tags |= {
        "source_run_id": run.info.run_id,
        "selected_by": metric,
        "classes": run.data.params.get("cfg.classes", ""),
        "img_size": run.data.params.get("cfg.img_size", ""),
        "architecture": run.data.params.get("cfg.architecture", ""),
        "data_digest": run.data.params.get("data.split_digest", ""),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, alias, version.version)
    return run, version
