"""A training run's settings: an experiment file from ``experiments/`` plus command-line overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xraytrack.errors import XrayTrackError

log = logging.getLogger(__name__)

# Settings that do not change what is computed, so they do not break resuming. ``distribute``
# changes only where a step runs (a data-parallel step is the same step, up to float rounding).
VOLATILE = {"cfg.run_name", "cfg.experiment", "cfg.cache_dir", "cfg.audit", "cfg.distribute"}
# Settings added after runs were made, with the defaults that compute what those runs computed.
ADDED_LATER = {"cfg.preprocess": "none", "cfg.lr_schedule": "constant", "cfg.warmup_epochs": "0",
               "cfg.head_epochs": "0"}


# The smallest value each count may take: 32 px is the least input every architecture accepts
# (MobileNetV2's own floor); a 0 or negative batch, epoch count or patience used to train nothing
# and log it as FINISHED, or end in a traceback.
AT_LEAST = {"img_size": 32, "batch_size": 1, "epochs": 1, "limit_per_class": 0, "patience": 0,
            "dedup_distance": 0}  # warm-up and head epochs: their own checks, which know more


def check_at_least(name: str, value) -> None:
    """One line for a count below its floor (``AT_LEAST``); other settings pass."""
    if name in AT_LEAST and value < AT_LEAST[name]:
        raise XrayTrackError(f"{name} must be at least {AT_LEAST[name]}; got {value}")


def check_ranges(cfg: "TrainConfig") -> None:
    for name in AT_LEAST:
        check_at_least(name, getattr(cfg, name))
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(cfg, name) < 1:
            raise XrayTrackError(f"{name} must be between 0 and 1; got {getattr(cfg, name)}")
    if cfg.val_fraction + cfg.test_fraction >= 1:
        raise XrayTrackError("val_fraction + test_fraction must leave images to train on; got "
                             f"{cfg.val_fraction} + {cfg.test_fraction}")


def _check_weights(weights: str | None, architecture: str) -> None:
    """Starting weights belong to a pretrained base: given to a CNN that trains from random
    weights they were silently ignored, and a comparison of them trained identical arms."""
    from xraytrack.models import PRETRAINED

    if weights not in (None, "", "none") and architecture not in PRETRAINED:
        raise XrayTrackError(f"weights={weights} needs a pretrained base "
                             f"({', '.join(PRETRAINED)}); {architecture} starts from random weights")


@dataclass(frozen=True)
class TrainConfig:
    architecture: str
    data_dir: str = ""
    classes: tuple[str, ...] = ()  # empty: every class folder found, in sorted order
    img_size: int = 150
    batch_size: int = 32
    epochs: int = 10
    seed: int = 42  # starting weights, augmentation draws and training order
    split_seed: int = 42  # the train/val/test split and the per-class sample: fixed across seeds
    limit_per_class: int = 0  # 0: all images; N: a seeded sample of N per class for quick runs
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    dedup_distance: int = 10  # bits of the 256-bit perceptual hash
    augment: bool = True
    horizontal_flip: bool = False
    weights: str | None = None
    balance: str = "none"  # see balancing.STRATEGIES; training split only
    monitor: str = "val_loss"  # drives early stopping and the best checkpoint
    patience: int = 0  # 0: no early stopping
    lr_schedule: str = "constant"  # constant, cosine or plateau (training.schedules)
    warmup_epochs: int = 0  # cosine only: epochs of linear warm-up
    head_epochs: int = 0  # of ``epochs``, the first ones train the head alone (training.two_phase)
    audit: bool = True  # shortcut audit and Grad-CAM overlays after the test evaluation
    hyperparameters: dict = field(default_factory=dict)
    experiment: str = "xraytrack"
    run_name: str | None = None
    cache_dir: str | None = None
    distribute: str = "auto"  # auto, none or data_parallel (training.distribute)
    preprocess: str = "none"  # strategies against source shortcuts (models.preprocessing)

    def __post_init__(self):
        # One spelling per strategy (and a clear error for a wrong one) before anything runs.
        from xraytrack.models.preprocessing import canonical
        from xraytrack.models.spec import monitor_mode
        from xraytrack.training import two_phase
        from xraytrack.training.schedules import check

        check_ranges(self)
        _check_weights(self.weights, self.architecture)
        object.__setattr__(self, "preprocess", canonical(self.preprocess))
        monitor_mode(self.monitor)
        check(self.lr_schedule, self.warmup_epochs, self.epochs)
        two_phase.check(self.head_epochs, self.epochs, self.architecture)

    @property
    def monitor_mode(self) -> str:
        from xraytrack.models.spec import monitor_mode

        return monitor_mode(self.monitor)

    def with_overrides(self, **overrides) -> "TrainConfig":
        """Apply the values a user actually gave (None means 'keep the file's value')."""
        given = {k: v for k, v in overrides.items() if v is not None}
        hps = {**self.hyperparameters, **given.pop("hyperparameters", {})}
        if "warmup_epochs" not in given:
            given["warmup_epochs"] = self._warmup_for(given.get("epochs", self.epochs),
                                                      given.get("lr_schedule", self.lr_schedule))
        return dataclasses.replace(self, **given, hyperparameters=hps)

    def _warmup_for(self, epochs: int, schedule: str) -> int:
        """The file's warm-up belongs to the file's epochs and schedule: a command line that
        shortens the run (a quick ``-P epochs=1``) or changes the schedule without naming a
        warm-up gets the part of it that still fits, with a note, instead of an error about a
        setting the user never gave. A warm-up given on the command line is checked as given."""
        fitted = min(self.warmup_epochs, max(epochs - 1, 0)) if schedule == "cosine" else 0
        if fitted != self.warmup_epochs:
            log.warning("warmup_epochs %d of the experiment file does not fit lr_schedule %s with "
                        "%d epochs: using %d", self.warmup_epochs, schedule, epochs, fitted)
        return fitted

    def params(self) -> dict[str, str]:
        """Flat MLflow params: settings as ``cfg.<name>``, hyper-parameters as ``hp.<name>``.

        The prefixes keep them apart from the raw entry-point arguments that ``mlflow run`` logs
        under the bare names before xraytrack starts (and that MLflow will not let us change).
        """
        flat = {f"cfg.{k}": v for k, v in dataclasses.asdict(self).items() if k != "hyperparameters"}
        flat["cfg.classes"] = ",".join(self.classes)
        flat.update({f"hp.{k}": v for k, v in self.hyperparameters.items()})
        return {k: "" if v is None else str(v) for k, v in flat.items()}

    def resume_key(self, **extra) -> str:
        """Identifies 'the same command', so re-running it continues where it stopped.

        ``extra`` adds what else defines the work (a search's tuner settings, say)."""
        items = {k: v for k, v in self.params().items() if k not in VOLATILE}
        for name, default in ADDED_LATER.items():  # at their defaults, the key is what it was
            if items.get(name) == default:         # before they existed: older checkpoints and
                del items[name]                    # finished seeds still match
        items |= {k: str(v) for k, v in extra.items()}
        return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise XrayTrackError(f"config file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise XrayTrackError(f"{path}: unknown setting {unknown[0]!r}")
    if "architecture" not in raw:
        raise XrayTrackError(f"{path}: missing 'architecture'")
    raw["classes"] = tuple(raw.get("classes") or ())
    return TrainConfig(**raw)
