"""The one fit path: ``fit_arguments`` builds what ``Model.fit`` gets in every job (a train run,
a comparison's strategy, a search's trials and its default baseline), so ``balance``, early
stopping and per-epoch logging mean the same everywhere; ``fit`` adds checkpoints and resume.

Resuming: checkpoints live under ``<cache>/checkpoints/<resume key of the config>``. Re-running
the same command after an interruption restores the weights, optimizer state and epoch counter
(Keras' BackupAndRestore) and copies the interrupted run's epoch metrics into the new run, so its
learning curves are whole.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import keras
import mlflow
from mlflow.entities import Metric

from xraytrack.config import TrainConfig
from xraytrack.data.cache import default_cache_dir
from xraytrack.data.prepare import PreparedData
from xraytrack.training import balancing

log = logging.getLogger(__name__)


class EpochMetrics(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback minus its step-less ``validation_*`` copies of the val_ metrics."""

    def on_test_end(self, logs=None):
        pass


def checkpoint_dir(cfg: TrainConfig) -> Path:
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    return root / "checkpoints" / cfg.resume_key()


def _copy_history(previous_run: str, upto_epoch: int) -> dict[str, list[float]]:
    """Log the interrupted run's epoch metrics (steps <= upto_epoch) into the active run."""
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    copied: dict[str, list[float]] = {}
    for key in client.get_run(previous_run).data.metrics:
        if key.startswith(("system/", "test_")):
            continue
        history = [m for m in client.get_metric_history(previous_run, key) if m.step <= upto_epoch]
        client.log_batch(run_id, metrics=[Metric(key, m.value, m.timestamp, m.step) for m in history])
        copied[key] = [m.value for m in history]
    return copied


def _resume(ckpt: Path, cfg: TrainConfig) -> float | None:
    """Continue an interrupted run's history; returns the best monitored value so far."""
    state_file, meta_file = ckpt / "state.json", ckpt / "backup" / "training_metadata.json"
    previous = json.loads(state_file.read_text())["run_id"] if state_file.exists() else None
    run_id = mlflow.active_run().info.run_id
    state_file.write_text(json.dumps({"run_id": run_id}))
    if not (previous and meta_file.exists()):
        return None
    epoch = json.loads(meta_file.read_text())["epoch"]
    print(f"Resuming from epoch {epoch + 1} of interrupted run {previous} ({ckpt})")
    mlflow.set_tag("xraytrack.resumed_from", previous)
    history = _copy_history(previous, epoch) if previous != run_id else {}
    seen = history.get(cfg.monitor)
    if not seen:
        return None
    return min(seen) if cfg.monitor_mode == "min" else max(seen)


def fit_arguments(cfg: TrainConfig, data: PreparedData) -> dict:
    """Keyword arguments of ``Model.fit`` (and of keras-tuner's ``search``) for ``cfg``: the
    training sequence in the balancing strategy's order, validation data, epochs, class weights,
    early stopping and per-epoch MLflow metrics (logged into whichever run is active)."""
    train_labels = data.labels("train")
    class_weight = None
    if cfg.balance == "class_weight":
        class_weight = balancing.balanced_class_weight(train_labels, len(data.classes))
    order_fn = balancing.epoch_order(cfg.balance, train_labels, cfg.batch_size, cfg.seed)
    callbacks = [EpochMetrics()]
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=cfg.monitor, mode=cfg.monitor_mode, patience=cfg.patience, verbose=1
        ))
    return dict(
        x=data.sequence("train", cfg.batch_size, shuffle=True, seed=cfg.seed, order_fn=order_fn),
        validation_data=data.sequence("val", cfg.batch_size),
        epochs=cfg.epochs,
        class_weight=class_weight,
        callbacks=callbacks,
    )


def fit(model: keras.Model, data: PreparedData, cfg: TrainConfig) -> keras.Model:
    """Train on the train split, validate on val; return the model with its best weights.

    Adds to ``fit_arguments`` what a run that must survive interruption needs: a backup to
    resume from and the best epoch's weights."""
    ckpt = checkpoint_dir(cfg)
    ckpt.mkdir(parents=True, exist_ok=True)
    best_so_far = _resume(ckpt, cfg)
    best_file = ckpt / "best.weights.h5"
    args = fit_arguments(cfg, data)
    args["callbacks"] = [
        keras.callbacks.BackupAndRestore(str(ckpt / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(best_file), monitor=cfg.monitor, mode=cfg.monitor_mode, save_best_only=True,
            save_weights_only=True, initial_value_threshold=best_so_far,
        ),
        *args["callbacks"],
    ]
    if args["class_weight"] is not None:
        mlflow.log_dict({data.classes[c]: w for c, w in args["class_weight"].items()},
                        "class_weight.json")
    model.fit(**args)
    if best_file.exists():
        model.load_weights(str(best_file))
    else:
        log.warning("no epoch improved %s; keeping the last weights", cfg.monitor)
    return model


def discard_checkpoints(cfg: TrainConfig) -> None:
    """Called once the run is fully logged: nothing is left to resume."""
    shutil.rmtree(checkpoint_dir(cfg), ignore_errors=True)
