"""The one fit path: ``fit_arguments`` builds what ``Model.fit`` gets in every job (a train run,
a comparison's strategy, a search's trials and its default baseline), so ``balance``, early
stopping and per-epoch logging mean the same everywhere; ``fit`` adds checkpoints and resume.

Resuming: checkpoints live under ``<cache>/checkpoints/<resume key of the config>``. Re-running
the same command after an interruption restores the weights, optimizer state and epoch counter
(Keras' BackupAndRestore), the epochs early stopping and the plateau schedule had waited
(``resumable``), and copies the interrupted run's epoch metrics into the new run, so its
learning curves are whole.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from xraytrack.config import TrainConfig
from xraytrack.data.cache import default_cache_dir
from xraytrack.data.prepare import PreparedData
from xraytrack.errors import XrayTrackError
from xraytrack.tracking import runs
from xraytrack.tracking.store import redact
from xraytrack.training import balancing, distribute, resumable, schedules, two_phase

log = logging.getLogger(__name__)

FITTED = "fitted.weights.h5"


class EpochMetrics(keras.callbacks.Callback):
    """What MLflow's Keras callback logs (optimizer parameters, model summary, each epoch's
    metrics), but each epoch synchronously and letting errors through. MLflow's callback swallows
    every exception (its metaclass makes it "exception safe"), so a store that went away mid-run
    went unnoticed until training ended. Here a failed log stops ``fit`` before the epoch's backup
    is written, so the checkpoint never claims an epoch whose metrics the store lacks.

    A two-phase run's head phase logs its optimizer as ``head_optimizer_*``."""

    def __init__(self, param_prefix: str = "optimizer_"):
        super().__init__()
        self.param_prefix = param_prefix

    def on_train_begin(self, logs=None):
        config = self.model.optimizer.get_config()
        logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params  # a second fit in
        mlflow.log_params({f"{self.param_prefix}{k}": v for k, v in config.items()  # one run
                           if f"{self.param_prefix}{k}" not in logged})  # keeps the first
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        mlflow.log_text("\n".join(lines), artifact_file="model_summary.txt")

    def on_epoch_end(self, epoch, logs=None):
        if logs:
            mlflow.log_metrics(logs, step=epoch, synchronous=True)


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """The best epoch's weights, saved by the chief alone: see ``distribute.outside_mesh``."""

    def _save_model(self, epoch, batch, logs):
        with distribute.outside_mesh():
            super()._save_model(epoch, batch, logs)


def checkpoint_dir(cfg: TrainConfig, process: int = 0) -> Path:
    """Where ``cfg``'s run keeps what it needs to resume; each host of a multi-host run other
    than the chief (``process`` > 0) keeps its own backup beside the chief's."""
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    name = cfg.resume_key() + (f"-process{process}" if process else "")
    return root / "checkpoints" / name


def _backed_up_epochs(ckpt: Path, head_epochs: int = 0) -> int | None:
    """How many epochs the backups in ``ckpt`` have finished (None: no backup): fine-tuning's
    ``BackupAndRestore``, else the head phase's, else the head phase's end."""
    for folder in ("backup", two_phase.HEAD_BACKUP):
        meta_file = ckpt / folder / "training_metadata.json"
        if meta_file.exists():
            return json.loads(meta_file.read_text())["epoch"]
    return head_epochs if head_epochs and (ckpt / two_phase.HEAD_WEIGHTS).exists() else None


def _copy_history(previous_run: str, upto_epoch: int) -> dict[str, list[float]]:
    """Log the interrupted run's epoch metrics (steps <= upto_epoch) into the active run."""
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    copied: dict[str, list[float]] = {}
    for key in client.get_run(previous_run).data.metrics:
        if key.startswith(("system/", "test_", "audit_", "temperature")):
            continue
        history = sorted((m for m in client.get_metric_history(previous_run, key)
                          if m.step <= upto_epoch), key=lambda m: m.step)
        client.log_batch(run_id, metrics=[Metric(key, m.value, m.timestamp, m.step) for m in history])
        copied[key] = [m.value for m in history]
    return copied


@dataclass
class Resume:
    """Where an earlier, interrupted run of the same command left off."""

    previous: str | None = None  # its run id
    epochs_done: int = 0  # finished epochs: the training order continues from there
    best: float | None = None  # best monitored value so far, for the best-epoch checkpoint
    fitted: bool = False  # it had finished training: only evaluation and logging are left


def _read_state(ckpt: Path) -> dict:
    state_file = ckpt / "state.json"
    return json.loads(state_file.read_text()) if state_file.exists() else {}


def _start_afresh(ckpt: Path, why: str) -> None:
    print(f"Note: {why}; starting afresh (the checkpoint in {ckpt} is discarded).")
    for item in ckpt.iterdir():
        if item.name == "lock":  # held by this process (see ``exclusive``)
            continue
        shutil.rmtree(item) if item.is_dir() else item.unlink()


def _previous_run(ckpt: Path, state: dict, run_id: str) -> str | None:
    """The interrupted run to continue, if it belongs to this store and still exists; a
    predecessor left RUNNING by a killed process is marked KILLED on the way."""
    previous, store = state.get("run_id"), redact(mlflow.get_tracking_uri())
    if not previous or previous == run_id:
        return previous
    if state.get("store", store) != store:
        _start_afresh(ckpt, f"the checkpoint belongs to run {previous} of another tracking "
                            f"store ({state['store']})")
        return None
    try:
        run = mlflow.MlflowClient().get_run(previous)
    except MlflowException:
        _start_afresh(ckpt, f"run {previous} of the checkpoint is not in {store}")
        return None
    if runs.end_if_gone(run, f"its process ended without closing it; found by run {run_id}, "
                             "which resumed it"):
        print(f"Marked run {previous} KILLED: its process is gone.")
    return previous


def _resume(ckpt: Path, cfg: TrainConfig) -> Resume:
    """Continue an interrupted run's history in the active run."""
    run_id = mlflow.active_run().info.run_id
    state = _read_state(ckpt)
    previous = _previous_run(ckpt, state, run_id)
    state = _read_state(ckpt) if previous else {}
    backed_up = _backed_up_epochs(ckpt, cfg.head_epochs)
    (ckpt / "state.json").write_text(json.dumps(
        {**state, "run_id": run_id, "store": redact(mlflow.get_tracking_uri())}))
    fitted = bool(state.get("fitted")) and (ckpt / FITTED).exists()
    if not previous or not (fitted or backed_up is not None):
        return Resume()
    done = int(state["epochs"]) if fitted else backed_up
    print(f"Resuming interrupted run {previous} ({ckpt}): " +
          ("training had finished; evaluating" if fitted else f"from epoch {done + 1}"))
    mlflow.set_tag("xraytrack.resumed_from", previous)
    history = _copy_history(previous, done - 1) if previous != run_id else {}
    seen = history.get(cfg.monitor)
    if seen and len(resumable.read(ckpt)) < done == len(seen):  # a checkpoint from before
        resumable.write(ckpt, seen)  # MonitoredValues: the interrupted run logged the values
    best = (min(seen) if cfg.monitor_mode == "min" else max(seen)) if seen else None
    return Resume(previous, done, best, fitted)


def fit_arguments(cfg: TrainConfig, data: PreparedData,
                  plan: distribute.Plan = distribute.Plan("none")) -> dict:
    """Keyword arguments of ``Model.fit`` (and of keras-tuner's ``search``) for ``cfg``: the
    training sequence in the balancing strategy's order, validation data, epochs, class weights,
    early stopping and per-epoch MLflow metrics (logged into whichever run is active, by the
    chief alone when several hosts train: ``plan``, whose share of each batch this process reads)."""
    train_labels = data.labels("train")
    class_weight = None
    if cfg.balance == "class_weight":
        class_weight = balancing.balanced_class_weight(train_labels, len(data.classes))
    order_fn = balancing.epoch_order(cfg.balance, train_labels, cfg.batch_size, cfg.seed)
    # The schedule first: it adds the epoch's learning rate to the metrics EpochMetrics logs.
    callbacks = [*schedules.callbacks(cfg.lr_schedule, cfg.warmup_epochs, cfg.epochs, cfg.monitor,
                                      cfg.monitor_mode), *([EpochMetrics()] if plan.chief else [])]
    if cfg.patience:
        callbacks.append(resumable.EarlyStopping(
            monitor=cfg.monitor, mode=cfg.monitor_mode, patience=cfg.patience, verbose=1
        ))
    return dict(
        x=data.sequence("train", cfg.batch_size, shuffle=True, seed=cfg.seed, order_fn=order_fn,
                        shard=plan.shard),
        # The sequence shuffles itself, seeded by (seed, epoch); Keras' own shuffle of the batch
        # order would draw from Python's global random state, which a resumed run cannot replay.
        shuffle=False,
        validation_data=data.sequence("val", cfg.batch_size, shard=plan.shard),
        epochs=cfg.epochs,
        class_weight=class_weight,
        callbacks=callbacks,
    )


def _with_checkpoints(callbacks: list, *added) -> list:
    """``added`` after the schedule and the epoch's metrics (an epoch's metrics are stored before
    its backup says it is done), before early stopping."""
    stop = next((i for i, c in enumerate(callbacks)
                 if isinstance(c, keras.callbacks.EarlyStopping)), len(callbacks))
    return [*callbacks[:stop], *added, *callbacks[stop:]]


def fit(model: keras.Model, data: PreparedData, cfg: TrainConfig,
        placement: distribute.Placement | None = None) -> keras.Model:
    """Train on the train split, validate on val, on ``placement``'s devices; return the model
    on one device with its best weights.

    Adds to ``fit_arguments`` what a run that must survive interruption needs: a backup to
    resume from and the best epoch's weights."""
    placement = placement or distribute.Placement(distribute.Plan("none"))
    if not placement.plan.chief:
        return _fit_beside_chief(model, data, cfg, placement)
    ckpt = checkpoint_dir(cfg)
    ckpt.mkdir(parents=True, exist_ok=True)
    resume = _resume(ckpt, cfg)
    if resume.fitted:
        model = placement.single_device(model)
        model.load_weights(str(ckpt / FITTED))
        return model
    best_file = ckpt / "best.weights.h5"
    args = fit_arguments(cfg, data, placement.plan)
    best = BestCheckpoint(
        str(best_file), monitor=cfg.monitor, mode=cfg.monitor_mode, save_best_only=True,
        save_weights_only=True, initial_value_threshold=resume.best)
    if args["class_weight"] is not None:
        mlflow.log_dict({data.classes[c]: w for c, w in args["class_weight"].items()},
                        "class_weight.json")
    with placement.scope():
        epochs = _fit_phases(model, args, cfg, ckpt, resume.epochs_done, best)
    model = placement.single_device(model)  # weights are loaded on one device, not into a mesh
    if best_file.exists():
        two_phase.load_weights(model, best_file)  # the best epoch may be the head phase's
    else:
        log.warning("no epoch improved %s; keeping the last weights", cfg.monitor)
    _mark_fitted(model, ckpt, epochs)
    return model


def _fit_phases(model: keras.Model, args: dict, cfg: TrainConfig, ckpt: Path, done: int,
                *watchers: keras.callbacks.Callback) -> int:
    """Fit from epoch ``done`` (0, or where an interrupted run stopped): what is left of the head
    phase when ``cfg`` has one (``two_phase``), then the run's own recipe, each phase with its
    own backup in ``ckpt``. ``watchers`` (the best checkpoint) see every epoch of both phases;
    ``args["callbacks"]`` only the second: early stopping and the schedule start there, and on
    resuming they first replay the epochs done (``resumable``); if early stopping had already
    ended training, nothing is fitted.
    Returns the number of epochs finished in all."""
    logs = any(isinstance(c, EpochMetrics) for c in args["callbacks"])  # the chief's part
    monitored = resumable.MonitoredValues(ckpt, cfg.monitor)
    if done < cfg.head_epochs:
        args["x"].start_at_epoch(done)  # the order an uninterrupted run would see
        head_backup = keras.callbacks.BackupAndRestore(str(ckpt / two_phase.HEAD_BACKUP),
                                                       delete_checkpoint=False)
        callbacks = [*([EpochMetrics("head_optimizer_")] if logs else []), monitored, head_backup,
                     *watchers]
        with two_phase.head_only(model):
            model.fit(**{**args, "epochs": cfg.head_epochs, "callbacks": callbacks})
        model.save_weights(str(ckpt / two_phase.HEAD_WEIGHTS))  # saved, the backup can go
        shutil.rmtree(ckpt / two_phase.HEAD_BACKUP)
        done = cfg.head_epochs
    elif cfg.head_epochs and done == cfg.head_epochs:
        # The head phase ended in an earlier process and fine-tuning has no backup yet (one
        # would have counted past the head phase and restores the weights itself).
        two_phase.load_weights(model, ckpt / two_phase.HEAD_WEIGHTS)
    if resumable.replay(args["callbacks"], resumable.read(ckpt), cfg.head_epochs, done,
                        two_phase.compiled_rate(model)):
        print(f"Early stopping had ended training after epoch {done}: no epoch to add.")
        return done
    args["x"].start_at_epoch(done)
    callbacks = _with_checkpoints(args["callbacks"], monitored,
                                  keras.callbacks.BackupAndRestore(str(ckpt / "backup")), *watchers)
    history = model.fit(**{**args, "callbacks": callbacks, "initial_epoch": cfg.head_epochs})
    return done + len(history.epoch)


def _fit_beside_chief(model: keras.Model, data: PreparedData, cfg: TrainConfig,
                      placement: distribute.Placement) -> keras.Model:
    """A non-chief host's part: the same epochs on its share of each batch, with its own backup
    (so an interrupted multi-host run resumes on every host), no MLflow and no best checkpoint."""
    plan = placement.plan
    ckpt = checkpoint_dir(cfg, plan.process)
    done = _backed_up_epochs(ckpt, cfg.head_epochs) or 0
    args = fit_arguments(cfg, data, plan)
    with placement.scope():
        _fit_phases(model, args, cfg, ckpt, done)
    shutil.rmtree(ckpt, ignore_errors=True)
    return model


def _mark_fitted(model: keras.Model, ckpt: Path, epochs: int) -> None:
    """Keep the trained weights until the run is fully logged: if the store goes away while
    evaluating or logging, re-running the command evaluates them instead of training again."""
    model.save_weights(str(ckpt / FITTED))
    state = _read_state(ckpt)
    (ckpt / "state.json").write_text(json.dumps({**state, "fitted": True, "epochs": epochs}))


@contextmanager
def exclusive(cfg: TrainConfig, process: int = 0):
    """One process at a time per checkpoint: a second run of the same command (on a multi-host
    run, of the same host's command) is refused with one line naming the first, instead of both
    writing the same files."""
    ckpt = checkpoint_dir(cfg, process)
    ckpt.mkdir(parents=True, exist_ok=True)
    with open(ckpt / "lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            run = (f"MLflow run {_read_state(ckpt).get('run_id', 'not started yet')}"
                   if process == 0 else f"process {process} of a multi-host run")
            raise XrayTrackError(
                f"the same training is already running (pid {owner}, {run}); wait "
                f"for it to end or stop it, then re-run to resume ({ckpt})") from None
        fh.truncate(0)
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def discard_checkpoints(cfg: TrainConfig) -> None:
    """Called once the run is fully logged: nothing is left to resume."""
    shutil.rmtree(checkpoint_dir(cfg), ignore_errors=True)
