"""Early stopping and the plateau schedule count the epochs an interrupted run already did, so a
resumed run stops and cuts its rate where one that never stopped does."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import mlflow
import pytest
from helpers import interrupted_run, quick_config

from xraytrack.training import resumable, schedules
from xraytrack.training.train import run_training

# A monitored val_loss (lower is better): best at epoch 1, then worse and worse.
SCRIPT = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0]


def feed(callback, values, first_epoch=0, rate=1.0):
    """What ``Model.fit`` does to ``callback`` over epochs from ``first_epoch``: returns the epoch
    it stopped after (or None) and the rate each epoch ran at."""
    model = getattr(callback, "_model", None) or SimpleNamespace(
        stop_training=False, optimizer=SimpleNamespace(learning_rate=rate))
    model.stop_training = False
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values, start=first_epoch):
        rates.append(model.optimizer.learning_rate)
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            return epoch, rates
    return None, rates


def stopping():
    return resumable.EarlyStopping(monitor="val_loss", mode="min", patience=3)


def plateau():
    return resumable.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.2, patience=2,
                                       min_lr=1e-7)


@pytest.mark.parametrize("make", [stopping, plateau])
def test_interrupted_after_any_epoch_the_replayed_callback_decides_as_the_uninterrupted_one(make):
    whole_stop, whole_rates = feed(make(), SCRIPT)
    for done in range(1, len(SCRIPT)):
        replayed = make()
        stopped = replayed.replay(SCRIPT[:done], 0, 1.0)
        assert stopped == (whole_stop is not None and whole_stop < done)
        if stopped:
            continue
        rate = whole_rates[done]  # the backup restores the optimizer's rate, cuts included
        replayed.set_model(SimpleNamespace(stop_training=False,
                                           optimizer=SimpleNamespace(learning_rate=rate)))
        stop, rates = feed(replayed, SCRIPT[done:], first_epoch=done)
        assert stop == whole_stop, done
        assert rates == pytest.approx(whole_rates[done:len(whole_rates)]), done
    # Keras' own callbacks, started afresh after the interruption, decide otherwise:
    fresh_stop, fresh_rates = feed(make(), SCRIPT[3:], first_epoch=3, rate=whole_rates[3])
    assert (fresh_stop, fresh_rates) != (whole_stop, whole_rates[3:])


def test_replay_needs_every_epochs_value_else_the_callbacks_start_afresh(caplog):
    early = stopping()
    assert not resumable.replay([early], SCRIPT[:4], 0, done=5, learning_rate=1.0)
    assert "start counting afresh" in caplog.text
    assert resumable.replay([early], SCRIPT[:5], 0, done=5, learning_rate=1.0)


def test_the_values_file_keeps_one_value_per_epoch_in_order(tmp_path):
    values = resumable.MonitoredValues(tmp_path, "val_loss")
    for epoch in range(3):
        values.on_epoch_end(epoch, {"val_loss": SCRIPT[epoch]})
    values.on_epoch_end(1, {"val_loss": 0.5})  # an epoch done again after a resume
    assert resumable.read(tmp_path) == [1.0, 0.5]
    values.on_epoch_end(4, {"val_loss": 0.1})  # epoch 2 and 3 missing: not recorded
    assert resumable.read(tmp_path) == [1.0, 0.5]


class Scripted(keras.callbacks.Callback):
    """First of the run's callbacks: every later one (the schedule, the logged metrics, the
    checkpoints, early stopping) sees ``SCRIPT``'s val_loss."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = SCRIPT[epoch]


@pytest.fixture
def scripted(monkeypatch):
    original = schedules.callbacks
    monkeypatch.setattr(schedules, "callbacks", lambda *a: [Scripted(), *original(*a)])


def logged(run_id: str, key: str) -> list[float]:
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


RATE = 0.002


@pytest.mark.slow
def test_a_resumed_run_stops_and_cuts_its_rate_at_the_uninterrupted_runs_epochs(dataset, scripted):
    """Best at epoch 1: the plateau cuts after epoch 3 (two epochs without improvement) and early
    stopping ends the run after epoch 4 (three). Stopped after epoch 2 and resumed, callbacks
    starting afresh would see a new best at epoch 3, cut after 5 and stop after 6."""
    cfg = quick_config(dataset, epochs=8, lr_schedule="plateau", patience=3,
                       hyperparameters={"filters": 16, "learning_rate": RATE})
    interrupted_run(cfg, after_epoch=3)
    run_id = run_training(cfg)
    assert logged(run_id, "val_loss") == pytest.approx(SCRIPT[:5])
    assert logged(run_id, "learning_rate") == pytest.approx([RATE] * 4 + [RATE * 0.2])


@pytest.mark.slow
def test_a_run_resumed_past_where_early_stopping_ends_it_trains_no_more(dataset, scripted,
                                                                         monkeypatch, capsys):
    """As when a checkpoint from before the replay existed: the interrupted process ran epochs
    past the stop. The resumed run adds none and goes on to evaluate."""
    cfg = quick_config(dataset, epochs=8, patience=3)
    with monkeypatch.context() as mp:
        mp.setattr(resumable.EarlyStopping, "on_epoch_end", lambda *a, **k: None)
        interrupted_run(cfg, after_epoch=6)  # epochs 0-5 backed up; the stop was after 4
    run_id = run_training(cfg)
    assert "Early stopping had ended training after epoch 6" in capsys.readouterr().out
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert logged(run_id, "val_loss") == pytest.approx(SCRIPT[:6])
    assert "test_macro_f1" in run.data.metrics
