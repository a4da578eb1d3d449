"""Learning-rate schedules (the ``lr_schedule`` setting), candidates of issue 13's fine-tuning
recipe, as Keras callbacks so a run logs its learning rate each epoch:

- ``constant``: the optimizer's rate throughout (the seed's way);
- ``cosine``: ``warmup_epochs`` of linear warm-up, then a half cosine towards zero at the last
  epoch. A function of the epoch alone, so a resumed run continues the same curve;
- ``plateau``: Keras' ReduceLROnPlateau on the monitored metric (x0.2 after 2 epochs without
  improvement). A resumed run keeps the reduced rate (optimizer state in the backup) and the
  epochs it has waited (replayed by ``resumable``), so it cuts where an uninterrupted run would.
"""

from __future__ import annotations

import math

import keras

from xraytrack.errors import XrayTrackError
from xraytrack.training import resumable

SCHEDULES = ("constant", "cosine", "plateau")


def check(schedule: str, warmup_epochs: int, epochs: int) -> None:
    """One line for a schedule that cannot run, before anything is trained."""
    if schedule not in SCHEDULES:
        raise XrayTrackError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_epochs < 0 or (warmup_epochs and schedule != "cosine"):
        raise XrayTrackError("warmup_epochs needs lr_schedule cosine and must not be negative")
    if schedule == "cosine" and warmup_epochs >= epochs:
        raise XrayTrackError(f"warmup_epochs ({warmup_epochs}) must be fewer than epochs ({epochs})")


def cosine_rate(peak: float, epoch: int, epochs: int, warmup: int) -> float:
    """The rate of 0-based ``epoch``: peak * (epoch + 1) / (warmup + 1) while warming up (so
    one warm-up epoch runs at half the peak), then peak * (1 + cos(pi * progress)) / 2 with
    progress 0 (the peak) at the first epoch after warm-up."""
    if epoch < warmup:
        return peak * (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / (epochs - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(keras.callbacks.LearningRateScheduler):
    """The peak is the compiled learning rate, read when the model is attached: before a resumed
    run's backup restores the optimizer (whose rate the schedule has already changed)."""

    def __init__(self, epochs: int, warmup: int):
        super().__init__(self._rate)  # a bound method: keras-tuner's per-trial copies rebind it
        self.epochs, self.warmup, self.peak = epochs, warmup, 0.0

    def _rate(self, epoch: int, _current: float) -> float:
        return cosine_rate(self.peak, epoch, self.epochs, self.warmup)

    def set_model(self, model):
        super().set_model(model)
        self.peak = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def callbacks(schedule: str, warmup_epochs: int, epochs: int, monitor: str,
              mode: str) -> list[keras.callbacks.Callback]:
    """The schedule's callbacks for ``Model.fit`` (none for ``constant``)."""
    check(schedule, warmup_epochs, epochs)
    if schedule == "cosine":
        return [WarmupCosine(epochs, warmup_epochs)]
    if schedule == "plateau":
        return [resumable.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.2, patience=2,
                                            min_lr=1e-7, verbose=1)]
    return []
