"""Early stopping and reduce-on-plateau that count the epochs an interrupted run already did.

Keras' ``BackupAndRestore`` brings back the weights, the optimizer (its learning rate included)
and the epoch counter, but not what callbacks remember between epochs: ``EarlyStopping`` and
``ReduceLROnPlateau`` start again with no best value and no epochs waited. A run resumed three
epochs after its best would wait ``patience`` more epochs than one never stopped, and cut its rate
at other epochs: same command, different model.

Here every host keeps each finished epoch's monitored value in its checkpoint folder
(``MonitoredValues``, written before the epoch's backup), and on resuming the values of the
epochs done are fed through Keras' own callback logic (``replay``), so ``min_delta``, patience
and cooldown mean exactly what they mean in an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import keras

log = logging.getLogger(__name__)

VALUES = "monitored.json"


class Replayed:
    """Mixin for a Keras callback whose decisions depend on earlier epochs: ``replay`` rebuilds
    its state, which the next ``on_train_begin`` (``Model.fit``'s) keeps instead of resetting."""

    _replayed = False

    def replay(self, values: list[float], first_epoch: int, learning_rate: float) -> bool:
        """Feed epochs ``first_epoch``, ``first_epoch + 1``, ...'s monitored ``values`` to the
        callback, on a stand-in model whose optimizer starts at ``learning_rate`` (the real one is
        restored by the backup, already cut). Returns whether it would have stopped training."""
        stand_in = SimpleNamespace(stop_training=False,
                                   optimizer=SimpleNamespace(learning_rate=learning_rate))
        verbose, self.verbose = self.verbose, 0  # its messages were printed the first time
        self.set_model(stand_in)
        try:
            super().on_train_begin()
            for epoch, value in enumerate(values, start=first_epoch):
                super().on_epoch_end(epoch, {self.monitor: value})
        finally:
            self.verbose = verbose
        self._replayed = True
        return stand_in.stop_training

    def on_train_begin(self, logs=None):
        if not self._replayed:
            super().on_train_begin(logs)
        self._replayed = False  # once: a later fit starts afresh, as Keras' does


class EarlyStopping(Replayed, keras.callbacks.EarlyStopping):
    pass


class ReduceLROnPlateau(Replayed, keras.callbacks.ReduceLROnPlateau):
    pass


class MonitoredValues(keras.callbacks.Callback):
    """Keeps each finished epoch's value of ``monitor`` in ``folder``/monitored.json, a list
    indexed by epoch. Placed before the backup, so a backup never counts an epoch the list lacks."""

    def __init__(self, folder: Path, monitor: str):
        super().__init__()
        self.folder, self.monitor = Path(folder), monitor

    def on_epoch_end(self, epoch, logs=None):
        values = read(self.folder)[:epoch]
        if len(values) == epoch:  # else the list misses an earlier epoch: it cannot be replayed
            value = (logs or {}).get(self.monitor)
            write(self.folder, [*values, None if value is None else float(value)])


def read(folder: Path) -> list[float]:
    path = Path(folder) / VALUES
    return json.loads(path.read_text()) if path.exists() else []


def write(folder: Path, values: list[float]) -> None:
    """Atomically: a process killed mid-write leaves the previous list."""
    path = Path(folder) / VALUES
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(values))
    os.replace(partial, path)


def replay(callbacks: list, values: list[float], first_epoch: int, done: int,
           learning_rate: float) -> bool:
    """Rebuild the state of every ``Replayed`` callback from epochs ``first_epoch`` to ``done``
    (exclusive), the part of an interrupted run they watched. Returns whether one of them would
    already have stopped training. Without a value for every epoch (a checkpoint older than
    ``MonitoredValues``), they start afresh, as they did before, with a warning."""
    replayed = [c for c in callbacks if isinstance(c, Replayed)]
    if not replayed or done <= first_epoch:
        return False
    if len(values) < done:
        log.warning("the checkpoint keeps %d of the %d epochs' monitored values: early stopping "
                    "and the plateau schedule start counting afresh", len(values), done)
        return False
    stopped = [c.replay(values[first_epoch:done], first_epoch, learning_rate) for c in replayed]
    return any(stopped)
