"""Pick the best finished run of an experiment and register its image classifier; it becomes
'champion' only if it beats the current one.

Champions are chosen on validation (``restored_val_macro_f1``, the restored epoch's score), never
on the test split unless asked: a test score used for choosing is no longer a fair report. The
gate follows MLflow's ``MetricThreshold`` (a minimum absolute change) and compares only runs
tested on the same split; a newcomer that does not pass is registered as 'challenger'.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.entities import LoggedModelStatus, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

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


def find_logged_model(run: Run, name: str):
    """The model a run logged under ``name`` ('model', 'classifier', 'classifier_onnx'), or None.
    Only a READY one counts: logging cut short by Ctrl-C or a kill leaves a PENDING model without
    its files, which `export` took for a finished one."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND name = '{name}'",
        output_format="list",
    )  # by status in Python: `status = 'READY'` matches nothing in MLflow 3.17's SQL store
    ready = [m for m in models if m.status == LoggedModelStatus.READY]
    return ready[0] if ready else None


PARENTS = {"repeats": "a repeat over seeds", "comparison": "a comparison"}  # by xraytrack.role


def logged_model(run: Run, name: str):
    found = find_logged_model(run, name)
    if found is None:
        raise XrayTrackError(f"run {run.info.run_id} logged no '{name}' model{_instead(run)}")
    return found


def _instead(run: Run) -> str:
    """Which run to give instead: the id a user has at hand after `-P seeds` or `compare` is
    the parent's, which logs no model of its own; an evaluation's is not the model's either; an
    interrupted training's model was never logged."""
    tags = run.data.tags
    role = tags.get("xraytrack.role")
    if role == "evaluation":
        return f": it evaluated run {tags.get('xraytrack.source_run')}; give that one"
    if role not in PARENTS:
        status = run.info.status
        if status == "RUNNING":
            return (": it is RUNNING (or its process died without ending it: `xraytrack runs "
                    "cleanup`); give a FINISHED run")
        return "" if status == "FINISHED" else (
            f": it ended {status} before logging it; re-run its command to resume and finish it")
    try:
        children = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/child_runs.json")
    except MlflowException:  # the parent stopped before it listed them (interrupted)
        return f": it is the parent of {PARENTS[role]}; give one of its child runs"
    prefix = "seed " if role == "repeats" else ""  # its labels are the bare seeds
    listed = ", ".join(f"{prefix}{label} {child}" for label, child in list(children.items())[:4])
    more = f" ({len(children)} in its child_runs.json)" if len(children) > 4 else ""
    return f": it is the parent of {PARENTS[role]}; give one of its children: {listed}{more}"


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


DEFAULT_METRIC = "restored_val_macro_f1"
CHALLENGER = "challenger"


@dataclass
class Registration:
    run: Run
    version: ModelVersion | None  # None: the run was already behind the alias
    alias: str  # the alias it got
    reason: str


def current_version(name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``; None when there is none, or no such model yet."""
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        # MLflow's basic-auth server answers 403, not 404, for a model that does not exist yet
        if exc.error_code == "PERMISSION_DENIED" and not _visible(client, name):
            return None
        raise


def _visible(client: mlflow.MlflowClient, name: str) -> bool:
    """Whether a registered model ``name`` exists that this user may read."""
    escaped = name.replace("'", "\\'")
    return any(m.name == name for m in client.search_registered_models(f"name = '{escaped}'"))


def promotion(run: Run, current: ModelVersion | None, metric: str, mode: str,
              min_delta: float) -> tuple[bool, str]:
    """Whether ``run`` should replace the alias' current version, and why in one sentence."""
    if current is None:
        return True, "there is no current version to beat"
    held = mlflow.get_run(current.tags.get("source_run_id") or current.run_id)
    ours, theirs = (r.data.params.get("data.split_digest") for r in (run, held))
    if ours != theirs:
        return False, (f"version {current.version} was tested on another split (digest "
                       f"{str(theirs)[:12]} vs {str(ours)[:12]}), so the scores are not comparable")
    if metric not in held.data.metrics:
        return False, f"version {current.version} has no {metric} to compare with"
    new, old = run.data.metrics[metric], held.data.metrics[metric]
    gain = new - old if mode == "max" else old - new
    verdict = f"{metric} {new:.4f} vs {old:.4f} of version {current.version} (change {gain:+.4f}"
    if gain > 0 and gain >= min_delta:
        return True, f"{verdict}, at least the margin {min_delta})"
    return False, f"{verdict}, the margin is {min_delta})"


def register_best(experiment: str, metric: str = DEFAULT_METRIC, name: str = "xraytrack-cxr",
                  mode: str = "auto", alias: str = "champion", min_delta: float = 0.005,
                  force: bool = False) -> Registration:
    """The best run by ``metric``; its classifier becomes ``alias`` if it passes the gate (or
    ``force``), else ``challenger``. Nothing is registered again for the run already there."""
    mode = metric_mode(metric) if mode == "auto" else mode
    run = best_run(experiment, metric, mode)
    current = current_version(name, alias)
    if current is not None and run.info.run_id in (current.tags.get("source_run_id"), current.run_id):
        return Registration(run, None, alias, f"run {run.info.run_id} is already {alias} "
                                              f"(version {current.version})")
    promoted, reason = promotion(run, current, metric, mode, min_delta)
    if force and not promoted:
        promoted, reason = True, f"forced although {reason}"
    version = _register(run, metric, name)
    chosen = alias if promoted else CHALLENGER
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version.version, "promotion", reason)
    client.set_registered_model_alias(name, chosen, version.version)
    return Registration(run, version, chosen, reason)


def register_twin(done: Registration, metric: str, model_uri: str, name: str) -> ModelVersion | None:
    """Register another format of ``done``'s classifier (its ONNX twin) under ``name`` with the
    alias ``done`` got; None when that alias already points at this run's twin."""
    run_id = done.run.info.run_id
    current = current_version(name, done.alias)
    if current is not None and current.tags.get("source_run_id") == run_id:
        return None
    version = _register(done.run, metric, name, model_uri)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version.version, "promotion", done.reason)
    client.set_registered_model_alias(name, done.alias, version.version)
    return version


def _register(run: Run, metric: str, name: str, model_uri: str | None = None) -> ModelVersion:
    version = mlflow.register_model(model_uri or logged_model_uri(run, CLASSIFIER), name)
    client = mlflow.MlflowClient()
    client.update_model_version(name, version.version, description=model_card(run, metric))
    tags = {k: f"{v:.4f}" for k, v in run.data.metrics.items()
            if k.startswith(("test_", "restored_val_"))}
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
    return version
