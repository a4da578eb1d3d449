"""Find a trained Keras model, its classes and its source run from a run id or a model URI."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import keras
import mlflow
from mlflow.exceptions import MlflowException

from xraytrack.errors import XrayTrackError
from xraytrack.evaluation.calibration import Calibration
from xraytrack.models import preprocessing  # noqa: F401  registers its layers for load_model
from xraytrack.tracking.model_logging import KERAS_MODEL
from xraytrack.tracking.registry import logged_model_uri

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class TrainedModel:
    model: keras.Model
    classes: list[str]
    img_size: int
    run_id: str
    calibration: Calibration = field(default_factory=Calibration)


def _source_run(ref: str) -> str:
    if RUN_ID.match(ref):
        return ref
    if ref.startswith("runs:/"):
        return ref.split("/")[1]
    match = re.match(r"^models:/([^/@]+)@(.+)$", ref) or re.match(r"^models:/([^/@]+)/(\d+)$", ref)
    if match and not match.group(1).startswith("m-"):
        client = mlflow.MlflowClient()
        name, which = match.groups()
        version = (client.get_model_version(name, which) if which.isdigit()
                   else client.get_model_version_by_alias(name, which))
        return version.run_id
    if ref.startswith("models:/m-"):
        return mlflow.get_logged_model(ref.split("/")[1]).source_run_id
    raise XrayTrackError(f"{ref!r} is neither a run id nor a runs:/ or models:/ URI")


def load_trained(ref: str) -> TrainedModel:
    """The Keras-flavour model ('model') logged by the run behind ``ref``."""
    try:
        run = mlflow.get_run(_source_run(ref))
        uri = logged_model_uri(run, KERAS_MODEL)
        model = mlflow.keras.load_model(uri)
    except MlflowException as exc:
        raise XrayTrackError(f"cannot load {ref}: {exc.message.splitlines()[0]}") from None
    meta = mlflow.models.get_model_info(uri).metadata or {}
    return TrainedModel(model, list(meta["classes"]), int(meta["img_size"]), run.info.run_id,
                        Calibration.from_metadata(meta))
