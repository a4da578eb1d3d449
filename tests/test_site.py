"""`xraytrack evaluate` on a synthetic external site: labels, patients, DICOM, the logged run."""

import io
import signal

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import class_image
from dicoms import write_xray
from PIL import Image

from xraytrack.cli import main
from xraytrack.evaluation import site
from xraytrack.evaluation.calibration import apply_temperature
from xraytrack.serving.classifier import request_frame
from xraytrack.tracking.loading import load_trained
from xraytrack.tracking.model_logging import CLASSIFIER
from xraytrack.tracking.registry import logged_model_uri


def make_site(root, rng):
    """COVID and NORMAL (to be renamed Normal), an Other_pneumonia, one DICOM, one broken file;
    two images per patient; no Viral Pneumonia at all."""
    root.mkdir()
    rows = []
    for i in range(16):
        label, cls = ("COVID", 0) if i % 2 else ("NORMAL", 1)
        if i == 15:
            label, cls = "Other_pneumonia", 2
        name = f"img{i}.png"
        Image.fromarray(class_image(cls, rng)).save(root / name)
        rows.append((name, label, f"p{i // 2}"))
    write_xray(root / "scan.dcm", class_image(1, rng).astype(np.uint16) * 16)
    rows.append(("scan.dcm", "NORMAL", "p8"))
    (root / "broken.png").write_bytes(b"not a png")
    rows.append(("broken.png", "COVID", "p9"))
    pd.DataFrame(rows, columns=["path", "label", "patient_id"]).to_csv(root / "site.csv", index=False)
    return root / "site.csv"


def test_evaluate_an_external_site_end_to_end(trained, tmp_path):
    csv = make_site(tmp_path / "site_b", np.random.default_rng(5))
    result = CliRunner().invoke(main, [
        "evaluate", trained["run_id"], str(csv), "--label-map", "NORMAL=Normal",
        "--site", "site_b", "--n-bootstrap", "50", "--experiment", "external"])
    assert result.exit_code == 0, result.output
    assert "COVID-vs-rest AUC" in result.output
    assert ("Not in this set, so no per-class metric: Viral Pneumonia.\nLabels the model does not "
            "know, kept as negatives of every class (one vs rest): Other_pneumonia (1 image).\n"
            "1 unreadable file skipped") in result.output  # said before the scoring, not only logged
    (run,) = mlflow.search_runs(experiment_names=["external"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.tags["xraytrack.source_run"] == trained["run_id"]
    assert run.data.tags["xraytrack.site"] == "site_b"
    again = CliRunner().invoke(main, ["evaluate", run.info.run_id, str(csv)])  # the wrong id
    assert again.exit_code == 1 and again.output.strip() == (
        f"Error: run {run.info.run_id} logged no 'model' model: it evaluated run "
        f"{trained['run_id']}; give that one")
    p, m = run.data.params, run.data.metrics
    assert p["eval.n_images"] == "17" and p["eval.n_skipped"] == "1"  # broken.png skipped
    assert p["eval.bootstrap_unit"] == "patient"
    assert {"auc_covid", "auc_normal", "sensitivity_covid_at_sens0.95", "ece", "internal_auc_covid",
            "auc_covid_lo", "auc_covid_hi", "shift_auc", "specificity_covid"} <= set(m)
    assert not [k for k in m if "viral_pneumonia" in k and not k.startswith("internal_")]
    assert m["auc_covid_lo"] <= m["auc_covid"] <= m["auc_covid_hi"]
    report = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/generalization.md")
    assert "| auc_covid |" in report and "Viral Pneumonia" in report and "Other_pneumonia" in report
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "site_b" and dataset.tags[0].value == "evaluation"
    predictions = pd.read_csv(io.StringIO(
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/predictions.csv")))
    assert "Other_pneumonia" in set(predictions["label"])
    # the metrics are linked to the source run's classifier, so its page lists this site
    classifier = mlflow.search_logged_models(
        experiment_ids=[mlflow.get_run(trained["run_id"]).info.experiment_id], output_format="list",
        filter_string=f"source_run_id = '{trained['run_id']}' AND name = 'classifier'")[0]
    linked = {x.key for x in mlflow.get_logged_model(classifier.model_id).metrics
              if x.run_id == run.info.run_id}
    assert "auc_covid" in linked


def interrupt_reading(monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(site, "read_site", ctrl_c)


def test_an_evaluation_interrupted_before_its_run_says_nothing_was_logged(trained, tmp_path,
                                                                          monkeypatch):
    csv = make_site(tmp_path / "site_b", np.random.default_rng(5))
    interrupt_reading(monkeypatch)
    result = CliRunner().invoke(main, ["evaluate", trained["run_id"], str(csv),
                                       "--experiment", "interrupted"])
    assert result.exit_code == 130
    assert result.output.strip().endswith(
        "Interrupted before its MLflow run started; nothing was logged.")
    assert mlflow.get_experiment_by_name("interrupted") is None


def test_an_evaluation_interrupted_before_mlflow_runs_run_is_opened_ends_it_killed(
        trained, tmp_path, monkeypatch):
    """Under `mlflow run` the run exists first; left alone, `mlflow run` would mark it FAILED."""
    csv = make_site(tmp_path / "site_b", np.random.default_rng(5))
    waiting = mlflow.MlflowClient().create_run(mlflow.set_experiment("external").experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", waiting.info.run_id)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's SIGTERM handler
    interrupt_reading(monkeypatch)
    result = CliRunner().invoke(main, ["evaluate", trained["run_id"], str(csv)])
    assert result.exit_code == 130
    assert "its MLflow run is marked KILLED, before any result was logged" in result.output
    assert mlflow.get_run(waiting.info.run_id).info.status == "KILLED"
    again = CliRunner().invoke(main, ["evaluate", trained["run_id"], str(csv)])  # never reopened
    assert "its MLflow run had already ended KILLED" in again.output


def test_a_set_whose_labels_the_model_does_not_know_is_refused_before_any_run(trained, tmp_path):
    """Spelt otherwise (no --label-map), every image was a negative of every class: a logged
    evaluation with no metric."""
    csv = make_site(tmp_path / "site_b", np.random.default_rng(5))
    pd.DataFrame({"path": ["img1.png"], "label": ["covid"]}).to_csv(csv, index=False)
    before = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    result = CliRunner().invoke(main, ["evaluate", trained["run_id"], str(csv)])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: none of this set's labels (covid) is a class of the model (COVID, Normal, "
        "Viral Pneumonia); rename them with --label-map, e.g. 'covid=COVID'")
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == before


def test_a_label_map_that_is_not_pairs_is_a_one_line_error(trained, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", trained["run_id"], str(tmp_path),
                                       "--label-map", "NORMAL"])
    assert result.exit_code != 0 and "OLD=NEW" in result.output


def test_the_served_classifier_returns_calibrated_probabilities(trained):
    run = mlflow.get_run(trained["run_id"])
    t = run.data.metrics["temperature"]
    assert t != pytest.approx(1.0)
    files = sorted((trained["data"] / "COVID" / "images").glob("COVID-*.png"))[:3]
    served = mlflow.pyfunc.load_model(logged_model_uri(run, CLASSIFIER)).predict(
        request_frame([f.read_bytes() for f in files]))
    model = load_trained(trained["run_id"])
    from xraytrack.data.images import load_grayscale, resize

    pixels = np.stack([resize(load_grayscale(f), model.img_size) for f in files])
    raw = model.model.predict(pixels[..., None].astype("float32"), verbose=0)
    expected = apply_temperature(raw, t)
    np.testing.assert_allclose(served[list(model.classes)].to_numpy(), expected, atol=1e-5)
    assert model.calibration.temperature == pytest.approx(t)


def test_a_label_spelt_otherwise_than_a_class_gets_the_label_map_to_give():
    from xraytrack.evaluation.site import SiteImages, notes

    frame = pd.DataFrame({"label": ["covid", "covid", "Normal", "Other_pneumonia"]})
    site = SiteImages(np.zeros((4, 8, 8)), np.array([-1, -1, 1, -1]), frame, [])
    assert notes(site, ("COVID", "Normal")) == [
        "Not in this set, so no per-class metric: COVID.",
        "Labels the model does not know, kept as negatives of every class (one vs rest): "
        "Other_pneumonia, covid (3 images).",
        "If they are the same class, give --label-map 'covid=COVID'."]
