"""Keras Tuner search as an MLflow parent run, each trial a nested child run.

Roles follow keras-tuner's distributed mode: with KERASTUNER_TUNER_ID unset one process does
everything; ``chief`` serves the oracle (KERASTUNER_ORACLE_IP/PORT), owns the parent run and, when
the search ends, retrains the best configuration (the default, if no trial beat it); any other id
is a worker that runs trials and files them under the chief's parent run, found by the search's
key.
"""

from __future__ import annotations

import dataclasses
import io

import keras
import keras_tuner as kt
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from xraytrack.config import TrainConfig
from xraytrack.data.index import DatasetIndex
from xraytrack.data.prepare import PreparedData
from xraytrack.errors import XrayTrackError
from xraytrack.models import ModelSpec, architecture_values, build_model, hyperparameters
from xraytrack.models.spec import EPOCH_METRICS
from xraytrack.tracking import runs
from xraytrack.training import distribute, fitting, search_roles
from xraytrack.training.train import load_data, model_spec, resolve, seeded_model, train_and_log

TUNERS = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization, "random": kt.RandomSearch}
OBJECTIVES = {f"val_{name}": mode for name, mode in EPOCH_METRICS.items()}


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    tuner: str = "hyperband"
    max_trials: int = 20
    objective: str = "val_macro_f1"

    def check(self) -> None:
        if self.tuner not in TUNERS:
            raise XrayTrackError(f"unknown tuner {self.tuner!r}; choose one of {', '.join(TUNERS)}")
        if self.objective not in OBJECTIVES:
            raise XrayTrackError(
                f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.max_trials < 1:
            raise XrayTrackError(f"max_trials must be at least 1, got {self.max_trials}")


def search_key(cfg: TrainConfig, settings: SearchSettings) -> str:
    """The same command gives the same key: it names the resumable state and the parent run."""
    return cfg.resume_key(**{f"tune.{k}": v for k, v in dataclasses.asdict(settings).items()})


def best_of(values, objective: str) -> float:
    return max(values) if OBJECTIVES[objective] == "max" else min(values)


class ArchitectureHyperModel(kt.HyperModel):
    """The architecture's own builder: the same code path as ``train``."""

    def __init__(self, architecture: str, spec: ModelSpec):
        super().__init__(name=architecture)
        self.architecture, self.spec = architecture, spec

    def build(self, hp):
        return build_model(self.architecture, self.spec, hp)


class TrackedTrials:
    """Tuner mixin: every trial runs inside a child run of the search's parent run."""

    parent_run_id: str
    objective_name: str
    search_key: str | None = None  # a worker's: it looks up the chief's parent run for each trial

    def run_trial(self, trial, *args, **kwargs):
        parent = (search_roles.running_parent(self.search_key).info.run_id if self.search_key
                  else self.parent_run_id)
        with runs.tracked_run("", run_name=f"trial-{trial.trial_id}", parent_run_id=parent):
            mlflow.set_tags({"xraytrack.trial_id": trial.trial_id, "xraytrack.role": "trial",
                             "xraytrack.tuner_id": self.tuner_id})
            mlflow.log_params({f"hp.{k}": v for k, v in architecture_values(trial.hyperparameters).items()})
            histories = super().run_trial(trial, *args, **kwargs)
            values = [v for h in histories for v in h.history.get(self.objective_name, [])]
            if values:
                mlflow.log_metric(f"best_{self.objective_name}", best_of(values, self.objective_name))
            return histories


def make_tuner(settings: SearchSettings, hypermodel, directory: str, seed: int, epochs: int,
               parent_run_id: str, key: str | None = None):
    base = TUNERS[settings.tuner]
    tracked = type(f"Tracked{base.__name__}", (TrackedTrials, base), {})
    objective = kt.Objective(settings.objective, OBJECTIVES[settings.objective])
    common = dict(objective=objective, directory=directory, project_name="search", seed=seed,
                  overwrite=False, max_consecutive_failed_trials=3)
    if settings.tuner == "hyperband":
        tuner = tracked(hypermodel, max_epochs=epochs, factor=3, **common)
        tuner.oracle.max_trials = settings.max_trials  # Hyperband has no cap of its own
    else:
        tuner = tracked(hypermodel, max_trials=settings.max_trials, **common)
    tuner.parent_run_id, tuner.objective_name = parent_run_id, settings.objective
    tuner.search_key = key if search_roles.role() == "worker" else None
    search_roles.restore_display(tuner.oracle)
    return tuner


def trials_frame(tuner, experiment_id: str, parent_run_id: str) -> pd.DataFrame:
    """One row per trial: id, status, score, hyper-parameters and its MLflow child run."""
    runs = mlflow.search_runs(
        [experiment_id], output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' AND tags.`xraytrack.role` = 'trial'")
    run_of = {r.data.tags["xraytrack.trial_id"]: r.info.run_id for r in runs}
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        rows.append({"trial_id": trial_id, "status": trial.status, "score": trial.score,
                     "best_step": trial.best_step, "run_id": run_of.get(trial_id, ""),
                     **architecture_values(trial.hyperparameters)})
    return pd.DataFrame(rows)


def objective_figure(frame: pd.DataFrame, objective: str, default_score: float | None):
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    scores = frame["score"].astype(float).to_numpy()
    x = np.arange(len(scores))
    ax.scatter(x, scores, label="trial")
    running = (np.fmax.accumulate if OBJECTIVES[objective] == "max" else np.fmin.accumulate)(
        np.nan_to_num(scores, nan=-np.inf if OBJECTIVES[objective] == "max" else np.inf))
    ax.step(x, running, where="post", color="tab:orange", label="best so far")
    if default_score is not None:
        ax.axhline(default_score, color="gray", ls="--", label="architecture default")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend()
    return fig


def _search(cfg: TrainConfig, settings: SearchSettings, data: PreparedData, parent_run_id: str,
            directory: str, key: str | None = None):
    hypermodel = ArchitectureHyperModel(cfg.architecture, model_spec(cfg))
    tuner = make_tuner(settings, hypermodel, directory, cfg.seed, cfg.epochs, parent_run_id, key)
    keras.utils.set_random_seed(cfg.seed)  # the oracle's seed draws the settings; this, the weights
    tuner.search(**fitting.fit_arguments(cfg, data))  # trials fit as train does
    return tuner


def _default_score(cfg: TrainConfig, settings: SearchSettings, data: PreparedData,
                   parent_run_id: str, key: str) -> float:
    """The architecture's default configuration, trained on the same budget as a trial; once
    per search: a re-run of the same command reuses it, as it reuses the finished trials."""
    metric = f"best_{settings.objective}"
    done = runs.latest_finished(mlflow.get_run(parent_run_id).info.experiment_id,
                                {"xraytrack.default_of": key})
    if done and metric in done.data.metrics:
        print(f"Default: reusing finished run {done.info.run_id}")
        return done.data.metrics[metric]
    hp = hyperparameters(cfg.hyperparameters)
    model = seeded_model(cfg, hp)
    with runs.tracked_run("", run_name="default", parent_run_id=parent_run_id):
        # not xraytrack.search_key: that tag finds the parent run, for the workers
        mlflow.set_tags({"xraytrack.role": "default", "xraytrack.default_of": key})
        mlflow.log_params({f"hp.{k}": v for k, v in hp.values.items()})
        history = model.fit(**fitting.fit_arguments(cfg, data))
        best = best_of(history.history[settings.objective], settings.objective)
        mlflow.log_metric(metric, best)
    return float(best)


def run_search(cfg: TrainConfig, settings: SearchSettings) -> str | None:
    """Returns the parent run id (None on a worker)."""
    distribute.single_host("tune (its workers are keras-tuner's)")
    settings.check()
    if cfg.head_epochs:  # keras-tuner fits each trial once, in one phase
        raise XrayTrackError("tune trains each trial in one phase: set head_epochs to 0")
    cfg, index = resolve(cfg)
    build_model(cfg.architecture, model_spec(cfg), hyperparameters())  # bad settings fail here
    key = search_key(cfg, settings)
    directory = str(fitting.checkpoint_dir(cfg).parent.parent / "tuning" / key)
    if search_roles.role() == "worker":
        _work(cfg, settings, index, key, directory)
        return None
    with runs.tracked_run(cfg.experiment, cfg.run_name or f"tune-{cfg.architecture}") as parent:
        return _chief(cfg, settings, index, key, directory, parent)


def _work(cfg, settings, index: DatasetIndex, key: str, directory: str) -> None:
    """A worker's part: trials from the chief's oracle until it has none left."""
    import grpc  # keras-tuner's own transport, needed only here

    parent = search_roles.running_parent(key)
    mlflow.set_experiment(experiment_id=parent.info.experiment_id)
    try:
        with search_roles.worker_record(parent.info.run_id), search_roles.watching_the_chief():
            _search(cfg, settings, load_data(cfg, index), parent.info.run_id, directory, key)
    except grpc.RpcError as exc:
        raise search_roles.lost_chief(exc) from None


def _chief(cfg, settings, index: DatasetIndex, key: str, directory: str, parent) -> str:
    parent_id = parent.info.run_id
    mlflow.set_tags({"xraytrack.search_key": key, "xraytrack.role": "search"})
    mlflow.log_params({f"tune.{k}": v for k, v in dataclasses.asdict(settings).items()}
                      | {"tune.directory": directory, "tune.role": search_roles.role()})
    data = load_data(cfg, index)
    tuner = _search(cfg, settings, data, parent_id, directory)
    space = [{"name": h.name, **h.get_config()} for h in tuner.oracle.get_space().space]
    mlflow.log_dict(space, "search_space.json")
    frame = trials_frame(tuner, parent.info.experiment_id, parent_id)
    if frame.empty or frame["score"].isna().all():
        raise XrayTrackError("no trial finished; see the trial runs for their errors")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    mlflow.log_text(buf.getvalue(), "trials.csv")
    best_hp = architecture_values(tuner.get_best_hyperparameters(1)[0])
    best_score = float(tuner.oracle.get_best_trials(1)[0].score)
    default = _default_score(cfg, settings, data, parent_id, key)
    mlflow.log_dict(best_hp, "best_hyperparameters.json")
    mlflow.log_metrics({f"search_best_{settings.objective}": best_score,
                        f"default_{settings.objective}": default})
    better = best_score != default and best_of([best_score, default], settings.objective) == best_score
    mlflow.set_tags({"xraytrack.best_beats_default": str(better),
                     "xraytrack.final_configuration": "search" if better else "default"})
    fig = objective_figure(frame, settings.objective, default)
    mlflow.log_figure(fig, "objective_by_trial.png")
    plt.close(fig)
    print(f"Best {settings.objective}: {best_score:.4f} (default {default:.4f}) with {best_hp}")
    _retrain_the_winner(dataclasses.replace(cfg, hyperparameters=best_hp) if better else cfg, data,
                        "the search's best" if better else "the default (the search did not beat it)")
    return parent_id


def _retrain_the_winner(cfg: TrainConfig, data: PreparedData, which: str) -> None:
    """The parent's model is the configuration that scored best on validation, the default
    included: a search that did not beat the experiment file must not replace it."""
    hp = hyperparameters(cfg.hyperparameters)
    model = seeded_model(cfg, hp)  # fills in the builder's defaults for the rest of ``hp``
    print(f"Retraining {which}: {architecture_values(hp)}")
    train_and_log(cfg, data, model, hp)
