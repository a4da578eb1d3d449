"""One training run end to end: data, model, fit, test evaluation, MLflow logging."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path

import keras
import keras_tuner as kt
import mlflow

from xraytrack.config import TrainConfig
from xraytrack.data import split as split_manifest
from xraytrack.data.index import DatasetIndex, index_dataset
from xraytrack.data.prepare import PreparedData, prepare, summarize
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import metrics, test_split
from xraytrack.explain import audit, lungs
from xraytrack.models import ModelSpec, build_model, hyperparameters, preprocessing
from xraytrack.tracking import inputs, model_logging, runs
from xraytrack.training import balancing, calibrate, distribute, fitting


def model_spec(cfg: TrainConfig) -> ModelSpec:
    return ModelSpec(num_classes=len(cfg.classes), img_size=cfg.img_size, augment=cfg.augment,
                     horizontal_flip=cfg.horizontal_flip, weights=cfg.weights,
                     preprocess=cfg.preprocess, lung_box=lung_box(cfg)[0])


def lung_box(cfg: TrainConfig) -> tuple[tuple | None, str]:
    """The lung box of ``lung_crop`` and ``outside_lung_dropout`` for this data, and where it
    came from (logged as ``preprocess.lung_box*``); (None, "") when no strategy needs one."""
    if not preprocessing.needs_lung_box(cfg.preprocess):
        return None, ""
    return _dataset_lung_box(cfg.data_dir, cfg.classes)


@functools.cache  # read the masks once per dataset, not once per model built
def _dataset_lung_box(data_dir: str, classes: tuple[str, ...]) -> tuple[tuple, str]:
    box, n_masks = lungs.lung_box(Path(data_dir), classes)
    source = (f"bounding boxes of {n_masks} lung masks of the dataset" if n_masks
              else "the audit's fixed central box (the dataset has no lung masks)")
    print(f"Lung box (top, bottom, left, right) {box}: {source}")
    return box, source


def resolve(cfg: TrainConfig) -> tuple[TrainConfig, DatasetIndex]:
    """Index the data (checking paths and classes) and pin the class order into the config."""
    data_dir = cfg.data_dir
    if not data_dir:
        raise XrayTrackError("no data_dir given (pass --data-dir or set XRAYTRACK_DATA_DIR)")
    index = index_dataset(data_dir, cfg.classes or None, cfg.limit_per_class, cfg.split_seed)
    return dataclasses.replace(cfg, classes=index.classes, data_dir=str(index.root)), index


def load_data(cfg: TrainConfig, index: DatasetIndex) -> PreparedData:
    data = prepare(index, cfg.img_size, cfg.val_fraction, cfg.test_fraction, cfg.split_seed,
                   cfg.dedup_distance, cfg.cache_dir)
    print(summarize(data))
    return data


def log_data(data: PreparedData) -> None:
    """Counts, split manifest (and its digest), skipped files, and the dataset as an MLflow input."""
    split = data.split
    counts = split.counts()
    mlflow.log_params({f"data.n_{s}": sum(c.values()) for s, c in counts.items()})
    mlflow.log_params({"data.n_skipped": len(data.skipped), "data.split_digest": split.digest()})
    mlflow.log_dict(counts, "data_counts.json")
    mlflow.log_text(split.to_csv(), split_manifest.ARTIFACT)
    mlflow.log_text(data.skipped_csv(), "skipped.csv")
    frame = split.to_frame().astype({"group": str})  # an id, not a quantity
    with warnings.catch_warnings():  # MLflow 3.17 registers its local source twice and says so
        warnings.filterwarnings("ignore", message="The specified dataset source")
        dataset = mlflow.data.from_pandas(frame, source=split.index.root.as_uri(),
                                          name=split.index.root.name, targets="class")
    inputs.log_input(dataset, context="training")


def audit_test_split(model, data: PreparedData, probs, batch_size: int) -> None:
    images = data.images("test")
    regions, from_mask = lungs.lung_regions(data.split.index.root, data.paths("test"),
                                            images.shape[1])
    audit.run_and_log(model, images, data.labels("test"), probs, data.classes, regions, from_mask,
                      batch_size)


def seeded_model(cfg: TrainConfig, hp: kt.HyperParameters) -> keras.Model:
    """The model with its weights (and dropout and augmentation draws) seeded by ``cfg.seed``:
    the same command starts from the same model, and a comparison's strategies differ by their
    strategy alone. A bad setting fails here, before any run starts."""
    keras.utils.set_random_seed(cfg.seed)
    return build_model(cfg.architecture, model_spec(cfg), hp)


def train_and_log(cfg: TrainConfig, data: PreparedData, model: keras.Model,
                  hp: kt.HyperParameters,
                  placement: distribute.Placement | None = None) -> dict[str, float]:
    """Everything a training run logs, into the active MLflow run; returns the test scores.
    Fitting happens on ``placement``'s devices, everything after it on one device."""
    placement = placement or distribute.Placement(distribute.Plan("none"))
    mlflow.log_params(cfg.params() | {f"hp.{k}": v for k, v in hp.values.items()})
    box, source = lung_box(cfg)
    if box:
        mlflow.log_params({"preprocess.lung_box": ",".join(map(str, box)),
                           "preprocess.lung_box_source": source})
    runs.log_system_info()
    log_data(data)
    model = fitting.fit(model, data, cfg, placement)
    scores, probs = test_split.evaluate_and_log(model, data, cfg.batch_size)
    val_probs = calibrate.validate(model, data, cfg.batch_size)
    calibration = calibrate.calibrate(data.labels("val"), val_probs, data.classes)
    calibrate.log_calibration(calibration, data.labels("test"), probs, data.classes)
    if cfg.audit:
        audit_test_split(model, data, probs, cfg.batch_size)
    model_logging.log_models(model, data.classes, cfg.img_size, calibration)
    fitting.discard_checkpoints(cfg)
    print("Test: " + ", ".join(f"{k}={scores['test_' + k]:.4f}" for k in metrics.HEADLINE
                               if f"test_{k}" in scores))
    return scores


def run_training(cfg: TrainConfig, nested: bool = False, tags: dict | None = None) -> str | None:
    """Returns the MLflow run id (None on a host other than the chief, which logs nothing).
    Input problems raise XrayTrackError before any run starts.

    ``nested`` makes the run a child of the active one (a comparison's strategies).
    """
    placement = distribute.Placement(distribute.plan(cfg.distribute, cfg.batch_size))
    cfg, index = resolve(cfg)
    balancing.check_strategies([cfg.balance])
    hp = hyperparameters(cfg.hyperparameters)
    with placement.scope():
        model = seeded_model(cfg, hp)
    if not placement.plan.chief:
        with fitting.exclusive(cfg, placement.plan.process):
            fitting.fit(model, load_data(cfg, index), cfg, placement)
        print(f"Process {placement.plan.process} of {placement.plan.processes}: training done; "
              "process 0 evaluates and logs the run.")
        return None
    with fitting.exclusive(cfg), runs.tracked_run(cfg.experiment, cfg.run_name,
                                                  nested=nested) as run:
        mlflow.set_tags(tags or {})
        mlflow.log_params(placement.plan.params(cfg.batch_size))
        train_and_log(cfg, load_data(cfg, index), model, hp, placement)
        print(f"MLflow run {run.info.run_id} (experiment {run.info.experiment_id})")
        return run.info.run_id
