"""Two-phase fine-tuning (issue 13's recipe candidate): the head alone first, then the base's
trainable layers with it, interruptible and resumable in either phase."""

from __future__ import annotations

import mlflow
import pytest
from helpers import interrupted_run, only_run, quick_config

from xraytrack.errors import XrayTrackError
from xraytrack.models import ModelSpec, build_model, hyperparameters
from xraytrack.training import two_phase
from xraytrack.training.train import run_training
from xraytrack.training.tune import SearchSettings, run_search


def tiny_mobilenet():
    return build_model("mobilenet", ModelSpec(3, 32, augment=True),  # augmentation: a nested model
                       hyperparameters({"trainable_layers": 10, "learning_rate": 2e-4}))


def test_the_head_phase_trains_the_head_alone_at_ten_times_the_rate_then_restores_the_recipe():
    model = tiny_mobilenet()
    base = two_phase.pretrained_base(model)
    recipe_flags = [layer.trainable for layer in base.layers]
    recipe_weights = len(model.trainable_weights)
    with two_phase.head_only(model):
        assert {w.path.split("/")[0] for w in model.trainable_weights} == {"dense", "probabilities"}
        assert two_phase.compiled_rate(model) == pytest.approx(2e-3)
    assert [layer.trainable for layer in base.layers] == recipe_flags
    assert len(model.trainable_weights) == recipe_weights > 4
    assert two_phase.compiled_rate(model) == pytest.approx(2e-4)


@pytest.mark.parametrize("overrides, message", [
    (dict(head_epochs=4, epochs=4), r"head_epochs \(4\) must be 0 or fewer than epochs \(4\)"),
    (dict(head_epochs=-1), r"head_epochs \(-1\) must be 0"),
    (dict(head_epochs=1, architecture="simple_cnn"), "head_epochs needs a pretrained base"),
])
def test_a_head_phase_that_cannot_run_is_refused_before_anything_runs(overrides, message):
    with pytest.raises(XrayTrackError, match=message):
        quick_config("/data", **({"architecture": "mobilenet"} | overrides))


def test_tune_refuses_a_head_phase_its_trials_would_not_have():
    cfg = quick_config("/data", architecture="mobilenet", head_epochs=1)
    with pytest.raises(XrayTrackError, match="tune trains each trial in one phase"):
        run_search(cfg, SearchSettings())


def two_phase_config(dataset, **overrides):
    # No dropout: the resumed-equals-whole comparison is then exact on every backend.
    return quick_config(dataset, architecture="mobilenet", epochs=4, head_epochs=2,
                        hyperparameters={"trainable_layers": 10, "dense_dropout": 0.0,
                                         "learning_rate": 2e-4}, **overrides)


@pytest.mark.slow
def test_a_two_phase_run_stopped_in_either_phase_resumes_to_what_one_that_never_stopped_logs(
        dataset, tmp_path, monkeypatch):
    """Each phase has its own backup. Stopped in the head phase, the run resumes from the head's
    backup; stopped again right after the head phase, from the head's weights. In the end it logs
    what an uninterrupted run logs, both optimizers included."""
    cfg = two_phase_config(dataset)
    interrupted_run(cfg, after_epoch=1)
    assert only_run().info.status == "KILLED"
    interrupted_run(cfg, after_epoch=2)
    resumed_id = run_training(cfg)
    monkeypatch.setenv("XRAYTRACK_CACHE_DIR", str(tmp_path / "other-cache"))
    whole_id = run_training(cfg)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(cfg.experiment).experiment_id
    stopped = client.search_runs([experiment], "attributes.status = 'KILLED'")
    assert len(stopped) == 2
    curves = [[m.value for m in sorted(client.get_metric_history(r, "val_loss"),
                                       key=lambda m: m.step)] for r in (resumed_id, whole_id)]
    assert len(curves[0]) == 4
    assert curves[0] == pytest.approx(curves[1], abs=1e-5)
    resumed, whole = (mlflow.get_run(r).data for r in (resumed_id, whole_id))
    assert resumed.metrics["test_macro_f1"] == pytest.approx(whole.metrics["test_macro_f1"],
                                                             abs=1e-6)
    assert float(whole.params["head_optimizer_learning_rate"]) == pytest.approx(2e-3)
    assert float(whole.params["optimizer_learning_rate"]) == pytest.approx(2e-4)
    assert whole.params["cfg.head_epochs"] == "2"
