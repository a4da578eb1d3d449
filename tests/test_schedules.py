"""Fine-tuning recipe settings (issue 13): learning-rate schedules, label smoothing, AdamW."""

from __future__ import annotations

import copy

import keras
import mlflow
import pytest
from helpers import only_run, quick_config

from xraytrack.config import load_config
from xraytrack.errors import XrayTrackError
from xraytrack.models import ModelSpec, build_model, hyperparameters
from xraytrack.training.schedules import WarmupCosine, cosine_rate
from xraytrack.training.train import run_training


def test_cosine_warms_up_linearly_then_falls_from_the_peak_without_reaching_zero():
    rates = [cosine_rate(1.0, epoch, 10, 2) for epoch in range(10)]
    assert rates[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a > b for a, b in zip(rates[2:], rates[3:]))
    assert 0 < rates[-1] < 0.05
    assert [cosine_rate(1.0, e, 4, 0) for e in range(4)] == pytest.approx([1.0, 0.8536, 0.5, 0.1464],
                                                                          abs=1e-4)


def test_a_per_trial_copy_reads_its_own_models_rate():
    """keras-tuner deep-copies callbacks for each trial: the copy's peak is its own model's."""
    def model(rate):
        m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
        return m

    original = WarmupCosine(epochs=4, warmup=0)
    original.set_model(model(0.5))
    trial = copy.deepcopy(original)
    trial.set_model(model(0.01))
    assert trial.schedule(0, 0.0) == pytest.approx(0.01)
    assert original.schedule(0, 0.0) == pytest.approx(0.5)


def test_recipe_hyperparameters_default_to_the_seeds_loss_and_optimizer():
    spec = ModelSpec(num_classes=3, img_size=32, augment=False)
    plain = build_model("simple_cnn", spec, hyperparameters({"filters": 16}))
    assert isinstance(plain.optimizer, keras.optimizers.Adam)
    assert not isinstance(plain.optimizer, keras.optimizers.AdamW)
    assert plain.loss.get_config()["label_smoothing"] == 0.0
    recipe = build_model("simple_cnn", spec, hyperparameters(
        {"filters": 16, "label_smoothing": 0.1, "weight_decay": 1e-4}))
    assert isinstance(recipe.optimizer, keras.optimizers.AdamW)
    assert recipe.optimizer.weight_decay == pytest.approx(1e-4)
    assert recipe.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


@pytest.mark.slow
def test_a_cosine_run_logs_each_epochs_rate_from_the_peak(dataset):
    cfg = quick_config(dataset, epochs=4, lr_schedule="cosine", warmup_epochs=1,
                       monitor="val_macro_f1", hyperparameters={"filters": 16,
                                                                "learning_rate": 0.002})
    run_training(cfg)
    run = only_run()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "learning_rate")
    logged = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert logged == pytest.approx([cosine_rate(0.002, e, 4, 1) for e in range(4)], rel=1e-5)
    assert run.data.params["cfg.lr_schedule"] == "cosine"


def test_a_plateau_schedule_cannot_warm_up():
    with pytest.raises(XrayTrackError, match="warmup_epochs needs lr_schedule cosine"):
        quick_config("/data", lr_schedule="plateau", warmup_epochs=1)


def cosine_file(tmp_path):
    path = tmp_path / "cosine.yaml"
    path.write_text("architecture: simple_cnn\nepochs: 10\nlr_schedule: cosine\nwarmup_epochs: 2\n")
    return load_config(path)


@pytest.mark.parametrize("overrides, warmup", [
    ({"epochs": 1}, 0), ({"epochs": 2}, 1), ({"epochs": 20}, 2), ({"lr_schedule": "constant"}, 0),
    ({"lr_schedule": "plateau", "epochs": 1}, 0), ({"seed": 3}, 2)])
def test_the_files_warmup_fits_a_shorter_run_or_another_schedule(tmp_path, caplog, overrides,
                                                                 warmup):
    """A quick `-P epochs=1` of an experiment file that warms up runs instead of failing on a
    setting the user never gave, and says what it changed."""
    cfg = cosine_file(tmp_path).with_overrides(warmup_epochs=None, **overrides)
    assert cfg.warmup_epochs == warmup
    assert ("does not fit" in caplog.text) == (warmup != 2)


def test_a_warmup_given_on_the_command_line_is_checked_as_given(tmp_path):
    with pytest.raises(XrayTrackError, match=r"warmup_epochs \(2\) must be fewer than epochs \(1\)"):
        cosine_file(tmp_path).with_overrides(epochs=1, warmup_epochs=2)


@pytest.mark.parametrize("monitor, mode", [("val_loss", "min"), ("loss", "min"),
                                           ("val_macro_f1", "max"), ("val_auc", "max")])
def test_the_monitor_is_a_metric_the_model_reports_with_its_direction(monitor, mode):
    assert quick_config("/data", monitor=monitor).monitor_mode == mode


def test_a_misspelt_monitor_is_refused_before_anything_runs():
    with pytest.raises(XrayTrackError, match="unknown monitor 'val_macro_F1'"):
        quick_config("/data", monitor="val_macro_F1")
