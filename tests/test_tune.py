"""Keras Tuner search: parent/child runs, resume, settings errors (a chief and two workers:
tests/test_tracking_server.py, against the shared server)."""

import io

import mlflow
import pandas as pd
import pytest
from helpers import quick_config

from xraytrack.errors import XrayTrackError
from xraytrack.training import tune
from xraytrack.training.tune import SearchSettings, run_search

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _children(parent_id: str, role: str = "trial"):
    exp = mlflow.get_run(parent_id).info.experiment_id
    return mlflow.search_runs([exp], output_format="list", filter_string=(
        f"tags.mlflow.parentRunId = '{parent_id}' AND tags.`xraytrack.role` = '{role}'"))


@pytest.mark.slow
def test_search_is_a_parent_run_with_one_child_per_trial_and_a_retrained_best(dataset, monkeypatch):
    _default_scores(monkeypatch, 0.0)  # any trial beats it: the search's best is retrained
    cfg = quick_config(dataset, epochs=2, experiment="tune")
    parent_id = run_search(cfg, SearchSettings(tuner="random", max_trials=3))
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    trials = _children(parent_id)
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    assert all("hp.dense_units" in t.data.params and "val_macro_f1" in t.data.metrics for t in trials)
    assert len(mlflow.MlflowClient().get_metric_history(trials[0].info.run_id, "val_loss")) == 2
    assert len(_children(parent_id, "default")) == 1
    frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{parent_id}/trials.csv")))
    assert len(frame) == 3 and set(frame["run_id"]) == {t.info.run_id for t in trials}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id)}
    assert {"search_space.json", "trials.csv", "objective_by_trial.png", "best_hyperparameters.json",
            "confusion_matrix.png", "predictions.csv", "split.csv"} <= artifacts
    m = parent.data.metrics
    assert m["search_best_val_macro_f1"] == pytest.approx(frame["score"].max())
    assert "default_val_macro_f1" in m and "test_macro_f1" in m  # test touched by the final model
    assert parent.data.tags["xraytrack.best_beats_default"] == "True"
    assert parent.data.tags["xraytrack.final_configuration"] == "search"
    best = frame.loc[frame["score"].idxmax()]
    assert _hp(parent) == _hp(mlflow.get_run(best["run_id"]))


def _hp(run) -> dict:
    return {k: v for k, v in run.data.params.items() if k.startswith("hp.")}


def _default_scores(monkeypatch, score: float) -> None:
    """The default configuration still trains (its child run is real); its score is ``score``."""
    real = tune._default_score

    def fixed(*args):
        real(*args)
        return score

    monkeypatch.setattr(tune, "_default_score", fixed)


@pytest.mark.slow
def test_a_search_that_does_not_beat_the_default_retrains_the_default(dataset, monkeypatch):
    _default_scores(monkeypatch, 1.0)  # the highest macro-F1 there is: no trial can beat it
    cfg = quick_config(dataset, epochs=1, experiment="tune")
    parent_id = run_search(cfg, SearchSettings(tuner="random", max_trials=2))
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    tags, params = parent.data.tags, parent.data.params
    assert tags["xraytrack.best_beats_default"] == "False"
    assert tags["xraytrack.final_configuration"] == "default"
    assert _hp(parent) == _hp(_children(parent_id, "default")[0])  # the default's settings
    trials = {t.data.params["hp.learning_rate"] for t in _children(parent_id)}
    assert params["hp.learning_rate"] not in trials  # none of the trials' draws
    assert "test_macro_f1" in parent.data.metrics


@pytest.mark.slow
def test_hyperband_runs_its_brackets_within_max_trials(dataset):
    cfg = quick_config(dataset, epochs=3, experiment="tune")
    parent_id = run_search(cfg, SearchSettings(tuner="hyperband", max_trials=3))
    trials = _children(parent_id)
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    assert not any(k.startswith("hp.tuner/") for t in trials for k in t.data.params)
    assert mlflow.get_run(parent_id).info.status == "FINISHED"


@pytest.mark.slow
def test_rerunning_the_same_search_continues_it(dataset):
    cfg = quick_config(dataset, epochs=1, experiment="tune")
    first = run_search(cfg, SearchSettings(tuner="random", max_trials=2))
    second = run_search(cfg, SearchSettings(tuner="random", max_trials=2))
    assert _children(second) == []  # both trials were already done: nothing re-run
    assert _children(second, "default") == []  # nor the default: its score is reused
    scores = [mlflow.get_run(r).data.metrics["default_val_macro_f1"] for r in (first, second)]
    assert scores[0] == scores[1]
    frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{second}/trials.csv")))
    assert len(frame) == 2


@pytest.mark.slow
def test_an_interrupted_search_ends_killed_and_the_same_command_runs_the_rest(dataset, monkeypatch):
    from xraytrack.training import fitting

    original, epochs_seen = fitting.EpochMetrics.on_epoch_end, []

    def ctrl_c_in_the_second_trial(self, epoch, logs=None):
        original(self, epoch, logs)
        epochs_seen.append(epoch)
        if len(epochs_seen) == 2:
            raise KeyboardInterrupt

    cfg = quick_config(dataset, epochs=1, experiment="tune")
    settings = SearchSettings(tuner="random", max_trials=3)
    with monkeypatch.context() as mp:
        mp.setattr(fitting.EpochMetrics, "on_epoch_end", ctrl_c_in_the_second_trial)
        with pytest.raises(KeyboardInterrupt):
            run_search(cfg, settings)
    exp = mlflow.get_experiment_by_name("tune").experiment_id
    first = mlflow.search_runs([exp], output_format="list")
    assert {r.info.run_name: r.info.status for r in first} == {
        "tune-simple_cnn": "KILLED", "trial-0": "FINISHED", "trial-1": "KILLED"}
    second = run_search(cfg, settings)
    assert mlflow.get_run(second).info.status == "FINISHED"
    assert sorted(t.info.run_name for t in _children(second)) == ["trial-1", "trial-2"]
    frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{second}/trials.csv")))
    assert len(frame) == 3 and (frame["status"] == "COMPLETED").all()


@pytest.mark.slow
def test_balancing_reaches_every_trial_and_the_default_baseline(tmp_path, monkeypatch):
    """One fit path: `balance=oversample` means the same in a trial as in a train run."""
    from conftest import make_dataset

    from xraytrack.data.sequence import CachedImages

    root = make_dataset(tmp_path / "imbalanced", n_per_class=40, classes=("COVID", "Normal"),
                        extras=False)
    for f in sorted((root / "Normal" / "images").iterdir())[:25]:
        f.unlink()  # 40 COVID vs 15 Normal
    seen = {}  # (training sequence, epoch, batch) -> images of each class (Keras may re-read one)
    real = CachedImages.__getitem__

    def spy(self, batch):
        x, y = real(self, batch)
        if self.shuffle or self.order_fn is not None:
            seen[(id(self), self.epoch, batch)] = y.sum(axis=0)
        return x, y

    monkeypatch.setattr(CachedImages, "__getitem__", spy)
    cfg = quick_config(root, epochs=1, experiment="tune", balance="oversample")
    parent_id = run_search(cfg, SearchSettings(tuner="random", max_trials=1))
    assert len(_children(parent_id)) == 1
    epochs = {key[:2] for key in seen}
    assert len({key[0] for key in epochs}) >= 2  # the trial's, the baseline's, the retrain's
    whole = [e for e in epochs if sum(k[:2] == e for k in seen) == 4]  # 56 images, batches of 16
    assert len(whole) >= 3
    for epoch in whole:
        counts = sum(v for k, v in seen.items() if k[:2] == epoch)
        assert counts[0] == counts[1] == 28, counts  # oversampled to 28 + 28, trial included


@pytest.mark.slow
def test_the_tune_command_takes_the_training_inputs_and_schedule_a_train_run_does(dataset):
    """`tune --preprocess border_crop=0.9` searches models that crop, as `train` trains one."""
    from click.testing import CliRunner

    from xraytrack.cli import main
    from xraytrack.tracking.loading import load_trained

    result = CliRunner().invoke(main, [
        "tune", "--config", str(REPO / "experiments" / "simple_cnn.yaml"), "--data-dir",
        str(dataset), "--img-size", "32", "--epochs", "1", "--tuner", "random", "--max-trials", "1",
        "--preprocess", "border_crop=0.5", "--balance", "class_weight", "--augment", "false",
        "--audit", "false", "--monitor", "val_macro_f1", "--patience", "0",
        "--lr-schedule", "cosine", "--warmup-epochs", "0", "--experiment", "tune"])
    assert result.exit_code == 0, result.output
    (parent,) = mlflow.search_runs(experiment_names=["tune"], output_format="list",
                                   filter_string="tags.`xraytrack.role` = 'search'")
    p = parent.data.params
    assert (p["cfg.preprocess"], p["cfg.balance"], p["cfg.monitor"], p["cfg.lr_schedule"]) == (
        "border_crop=0.5", "class_weight", "val_macro_f1", "cosine")
    assert "audit_lungs_removed_macro_f1" not in parent.data.metrics
    model = load_trained(parent.info.run_id).model
    assert "border_crop" in {layer.name for layer in model.layers}  # the model crops


@pytest.mark.parametrize("settings, message", [
    (SearchSettings(tuner="grid"), "unknown tuner 'grid'"),
    (SearchSettings(objective="val_f2"), "unknown objective 'val_f2'"),
    (SearchSettings(max_trials=0), "max_trials must be at least 1"),
])
def test_bad_settings_are_one_line_errors(dataset, settings, message):
    with pytest.raises(XrayTrackError, match=message):
        run_search(quick_config(dataset), settings)
