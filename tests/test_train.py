"""`run_training` end to end on synthetic images: what lands in MLflow, resume, failure states."""

import json

import mlflow
import numpy as np
import pytest
from helpers import artifact_names, interrupted_run, only_run, quick_config

from xraytrack.evaluation import test_split
from xraytrack.models import hyperparameters
from xraytrack.training import fitting
from xraytrack.training.train import resolve, run_training, seeded_model

EXPECTED_ARTIFACTS = {
    "classification_report.json", "classification_report.txt", "confusion_matrix.png",
    "confusion_matrix.csv", "roc_curves.png", "learning_curves.png", "predictions.csv",
    "split.csv", "skipped.csv", "system_info.json", "data_counts.json", "model_summary.txt",
    "audit.md", "gradcam_overlays.png",
}


def test_a_run_logs_params_metrics_artifacts_dataset_and_a_loadable_model(dataset):
    run_id = run_training(quick_config(dataset, audit=True))
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["cfg.architecture"] == "simple_cnn" and p["cfg.epochs"] == "2"
    assert p["cfg.classes"] == "COVID,Normal,Viral Pneumonia"
    assert p["hp.filters"] == "16" and p["hp.dense_units"] == "128"
    assert p["data.n_skipped"] == "1" and len(p["data.split_digest"]) == 64
    m = run.data.metrics
    for name in ("test_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_macro_auc",
                 "test_precision_viral_pneumonia", "test_recall_covid", "test_f1_normal",
                 "test_auc_covid", "val_loss", "val_macro_f1", "audit_lungs_removed_macro_f1",
                 "audit_lungs_only_balanced_accuracy", "audit_gradcam_lung_share_normal"):
        assert 0 <= m[name] <= 10, name
    history = mlflow.MlflowClient().get_metric_history(run_id, "val_loss")
    assert sorted(h.step for h in history) == [0, 1]
    assert EXPECTED_ARTIFACTS <= artifact_names(run_id)
    skipped = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/skipped.csv")
    assert "COVID/images/corrupt.png" in skipped
    info = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/system_info.json"))
    assert info["keras_backend"] and info["cpu_cores"] >= 1 and "devices" in info
    assert run.data.tags["sys.keras"] and run.data.tags["sys.cpu"]
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest and dataset_input.dataset.name == dataset.name

    logged = {m.name: m for m in mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list")}
    assert set(logged) == {"model", "classifier"}  # Keras flavour, and the image-bytes pyfunc
    model = mlflow.pyfunc.load_model(logged["model"].model_uri)
    assert "keras" in model.metadata.flavors
    assert model.metadata.signature is not None
    assert model.metadata.metadata["classes"] == ["COVID", "Normal", "Viral Pneumonia"]
    probs = model.predict(np.full((2, 32, 32, 1), 100.0, dtype=np.float32))
    assert np.asarray(probs).shape == (2, 3)


def test_an_interrupted_run_is_killed_and_the_same_command_resumes(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=4)
    interrupted_run(cfg, after_epoch=1)
    killed = only_run()
    assert killed.info.status == "KILLED"
    assert fitting.checkpoint_dir(resolve(cfg)[0]).exists()

    run_id = run_training(cfg)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["xraytrack.resumed_from"] == killed.info.run_id
    steps = sorted(h.step for h in mlflow.MlflowClient().get_metric_history(run_id, "val_loss"))
    assert steps == [0, 1, 2, 3]  # two copied from the killed run, two trained after resuming
    assert not fitting.checkpoint_dir(resolve(cfg)[0]).exists()


def test_a_failure_after_training_ends_the_run_failed(dataset, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(test_split, "evaluate_and_log", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_training(quick_config(dataset, epochs=1))
    assert only_run().info.status == "FAILED"


def test_class_weight_and_a_class_subset(dataset):
    run_id = run_training(quick_config(dataset, epochs=1, classes=("Viral Pneumonia", "COVID"),
                                       balance="class_weight"))
    run = mlflow.get_run(run_id)
    assert run.data.params["cfg.classes"] == "Viral Pneumonia,COVID"
    weights = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/class_weight.json"))
    assert weights["COVID"] < weights["Viral Pneumonia"]  # COVID has the extra files
    assert "test_f1_normal" not in run.data.metrics


def test_the_seed_fixes_the_starting_weights(tmp_path):
    """Same seed, same model: a re-run, and every strategy of a comparison, start alike."""
    def weights(seed):
        cfg = quick_config(tmp_path, seed=seed, augment=True, classes=("COVID", "Normal"))
        return [w.copy() for w in seeded_model(cfg, hyperparameters(cfg.hyperparameters)).get_weights()]

    first, again, other = weights(1), weights(1), weights(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
