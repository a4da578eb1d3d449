"""Predictions stay aligned with the manifest from the cache to predictions.csv."""

import io

import mlflow
import numpy as np
import pandas as pd
from conftest import make_dataset
from helpers import artifact_names, oracle_model

from xraytrack.data.index import index_dataset
from xraytrack.data.prepare import prepare
from xraytrack.evaluation.predictions import read_predictions
from xraytrack.evaluation.test_split import log_evaluation, predict_split


def test_a_model_that_predicts_the_true_label_scores_one_through_the_pipeline(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=30, extras=False)
    data = prepare(index_dataset(root), 32, 0.15, 0.15, 0, 10, str(tmp_path / "c"))
    model = oracle_model(32)
    for split in ("train", "val", "test"):
        probs = predict_split(model, data, split, batch_size=7)  # odd size: a ragged last batch
        assert (probs.argmax(axis=1) == data.labels(split)).all(), split
        unshuffled = data.sequence(split, batch_size=len(data.labels(split)))[0][0][..., 0]
        np.testing.assert_array_equal(data.images(split), unshuffled)  # the same images, in order

    mlflow.set_experiment("tests")
    with mlflow.start_run() as run:
        probs = predict_split(model, data, "test", batch_size=7)
        scores = log_evaluation(data.labels("test"), probs, data.paths("test"), data.classes)
    assert scores["test_accuracy"] == 1.0 and scores["test_macro_f1"] == 1.0
    assert scores["test_macro_auc"] == 1.0
    assert {"predictions.csv", "confusion_matrix.png", "confusion_matrix.csv", "roc_curves.png",
            "classification_report.json", "classification_report.txt"} <= artifact_names(run.info.run_id)
    text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/predictions.csv")
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == ["path", "true", "predicted", *data.classes]
    assert (frame["true"] == frame["predicted"]).all()
    assert all(p.startswith(t + "/") for p, t in zip(frame["path"], frame["true"]))
    back = read_predictions(run.info.run_id, data.classes)  # the reader beside the writer
    assert back.paths == data.paths("test") and (back.y_true == data.labels("test")).all()
    np.testing.assert_allclose(back.probs, probs, rtol=1e-6)


def test_shuffled_training_batches_keep_images_and_labels_paired(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=30, extras=False)
    data = prepare(index_dataset(root), 32, 0.15, 0.15, 0, 10, str(tmp_path / "c"))
    seq = data.sequence("train", batch_size=8, shuffle=True, seed=1)
    centers = np.array([50.0, 120.0, 190.0])
    seen = 0
    for epoch in range(2):
        for i in range(len(seq)):
            x, y = seq[i]
            nearest = np.abs(x.mean(axis=(1, 2, 3))[:, None] - centers).argmin(axis=1)
            assert (nearest == y.argmax(axis=1)).all()
            seen += len(x)
        seq.on_epoch_end()
    assert seen == 2 * len(data.labels("train"))
