import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from xraytrack.cli import main
from xraytrack.evaluation.calibration import apply_temperature
from xraytrack.serving.classifier import request_frame
from xraytrack.tracking.model_logging import CLASSIFIER, KERAS_MODEL
from xraytrack.tracking.registry import logged_model_uri


def _classifier_uri(run_id: str) -> str:
    return logged_model_uri(mlflow.get_run(run_id), CLASSIFIER)


def test_predict_folder_recursively_skips_masks_and_reports_unreadable_files(trained, tmp_path):
    data = trained["data"]
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["predict", _classifier_uri(trained["run_id"]),
                                       str(data / "COVID"), str(data / "Normal" / "images" / "Normal-0.png"),
                                       "--out", str(out), "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["path", "label", "COVID", "Normal", "Viral Pneumonia"]
    # COVID: 24 + RGBA + 16-bit + JPEG + near-duplicate readable, the corrupt file skipped
    assert len(frame) == 24 + 4 + 1
    assert not frame["path"].str.contains("masks").any()
    assert "skipped" in result.output and "corrupt.png" in result.output
    assert frame[["COVID", "Normal", "Viral Pneumonia"]].sum(axis=1).round(4).eq(1).all()


def test_predict_takes_a_run_id_as_explain_and_evaluate_do(trained, tmp_path):
    image = str(trained["data"] / "COVID" / "images" / "COVID-0.png")
    run_id = trained["run_id"]
    frames = []
    for ref in (run_id, _classifier_uri(run_id)):
        out = tmp_path / f"{len(frames)}.csv"
        result = CliRunner().invoke(main, ["predict", ref, image, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"Wrote 1 prediction to {out}" in result.output
        frames.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(frames[0], frames[1])  # the run's served classifier
    keras_net = CliRunner().invoke(main, ["predict", f"runs:/{run_id}/{KERAS_MODEL}", image,
                                          "--out", str(tmp_path / "k.csv")])
    assert keras_net.exit_code == 1
    assert keras_net.output.strip() == (
        f"Error: runs:/{run_id}/{KERAS_MODEL} is not an xraytrack classifier: give a run id, a "
        f"registered models:/NAME@ALIAS or a run's runs:/RUN_ID/{CLASSIFIER}")
    missing = CliRunner().invoke(main, ["predict", "0" * 32, image, "--out", str(tmp_path / "m.csv")])
    assert missing.exit_code == 1 and missing.output.startswith(f"Error: cannot load {'0' * 32}: ")
    assert len(missing.output.strip().splitlines()) == 1


def test_an_interrupted_predict_keeps_its_rows_and_says_so(trained, tmp_path, monkeypatch):
    from xraytrack.serving import predict

    real = predict.predict_batches

    def interrupted_after_one_batch(*args):
        yield next(real(*args))
        raise KeyboardInterrupt  # Ctrl-C during the second batch

    monkeypatch.setattr(predict, "predict_batches", interrupted_after_one_batch)
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["predict", trained["run_id"], str(trained["data"] / "COVID"),
                                       "--out", str(out), "--batch-size", "8"])
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        "Interrupted; the CSV holds every row predicted so far.")
    assert len(pd.read_csv(out)) == 8


def test_predict_makes_its_out_folder_and_says_in_one_line_when_it_cannot(trained, tmp_path):
    uri = _classifier_uri(trained["run_id"])
    image = str(trained["data"] / "Normal" / "images" / "Normal-0.png")
    out = tmp_path / "results" / "site_a" / "p.csv"
    made = CliRunner().invoke(main, ["predict", uri, image, "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert len(pd.read_csv(out)) == 1
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    for command in (["predict", uri, image, "--out", str(blocked / "p.csv")],
                    ["explain", trained["run_id"], image, "--out", str(blocked / "overlays")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1
        assert result.output.strip().startswith("Error: ") and str(blocked) in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_served_preprocessing_matches_training(trained):
    """Image bytes through the classifier == the training cache's pixels through the Keras model."""
    from xraytrack.data.cache import load_or_build
    from xraytrack.data.index import index_dataset

    index = index_dataset(trained["data"])
    cache = load_or_build(index, 32, trained["root"] / "cache")  # the cache training used
    rows = [i for i, p in enumerate(index.paths) if p.startswith("Normal/")][:4]
    files = [index.root / index.paths[i] for i in rows]
    served = mlflow.pyfunc.load_model(_classifier_uri(trained["run_id"])).predict(
        request_frame([f.read_bytes() for f in files]))
    (keras_flavour,) = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{trained['run_id']}' AND name = 'model'",
        experiment_ids=[mlflow.get_run(trained["run_id"]).info.experiment_id], output_format="list")
    trained_path = mlflow.pyfunc.load_model(keras_flavour.model_uri).predict(
        cache.pixels[rows][..., None].astype(np.float32))
    # the served classifier applies the run's temperature; the Keras flavour gives raw outputs
    temperature = mlflow.get_run(trained["run_id"]).data.metrics["temperature"]
    assert served[["COVID", "Normal", "Viral Pneumonia"]].to_numpy() == pytest.approx(
        apply_temperature(np.asarray(trained_path), temperature), abs=1e-5)


def test_malformed_requests_raise_invalid_parameter_value(trained):
    model = mlflow.pyfunc.load_model(_classifier_uri(trained["run_id"]))
    for frame, message in [
        (pd.DataFrame({"image": ["%%%not-base64"]}), "not valid base64"),
        (pd.DataFrame({"image": ["aGVsbG8="]}), r"not a readable PNG/JPEG/DICOM image \(unknown format\)$"),
        (pd.DataFrame({"image": [""]}), "is empty"),
    ]:
        with pytest.raises(mlflow.exceptions.MlflowException, match=message) as err:
            model.predict(frame)
        assert err.value.get_http_status_code() == 400


OLD_SERVED_MODEL = '''import mlflow

from xraytrack.classifier import XrayClassifier

mlflow.models.set_model(XrayClassifier())
'''


def test_a_classifier_logged_by_xraytrack_0_1_still_loads_and_predicts(trained, tmp_path):
    """Models logged before the stage packages import `xraytrack.classifier` (the 0.1 layout)."""
    from xraytrack.tracking.loading import load_trained

    trained_model = load_trained(trained["run_id"])
    keras_file = tmp_path / "model.keras"
    trained_model.model.save(keras_file)
    entry = tmp_path / "served_model.py"
    entry.write_text(OLD_SERVED_MODEL)  # 0.1's models-from-code file, verbatim
    mlflow.set_experiment("old")
    with mlflow.start_run():
        old = mlflow.pyfunc.log_model(
            name="classifier", python_model=str(entry), artifacts={"keras_model": str(keras_file)},
            model_config={"classes": trained_model.classes, "img_size": trained_model.img_size})
    files = sorted((trained["data"] / "Normal" / "images").glob("*.png"))[:3]
    request = request_frame([f.read_bytes() for f in files])
    then = mlflow.pyfunc.load_model(old.model_uri).predict(request)
    now = mlflow.pyfunc.load_model(_classifier_uri(trained["run_id"])).predict(request)
    assert list(then["label"]) == list(now["label"])  # the same decisions
    # an 0.1 model has no temperature: it still answers the network's own probabilities
    from xraytrack.data.images import load_grayscale, resize

    pixels = np.stack([resize(load_grayscale(f), trained_model.img_size) for f in files])
    raw = trained_model.model.predict(pixels[..., None].astype("float32"), verbose=0)
    np.testing.assert_allclose(then[trained_model.classes].to_numpy(), raw, atol=1e-6)


def test_a_classifier_logged_under_mlflow_run_keeps_its_config_as_params(trained):
    """`mlflow run` logs the entry point's raw arguments first, `classes` and `img_size` empty
    when left to the experiment file; the classifier's config must not collide with them (MLflow
    would then drop all of it, with a warning), and the model must still load and answer."""
    from xraytrack.evaluation.calibration import Calibration
    from xraytrack.tracking.loading import load_trained
    from xraytrack.tracking.model_logging import log_classifier, pip_requirements

    trained_model = load_trained(trained["run_id"])
    mlflow.set_experiment("entry-point")
    with mlflow.start_run() as run:
        mlflow.log_params({"classes": "", "img_size": ""})
        logged = log_classifier(trained_model.model, trained_model.classes, trained_model.img_size,
                                pip_requirements(), Calibration(1.5, {"COVID": {"0.95": 0.25}}))
    params = mlflow.get_run(run.info.run_id).data.params
    assert (params["classes"], params["img_size"]) == ("", "")  # the entry point's, untouched
    assert params["classifier/img_size"] == str(trained_model.img_size)
    assert params["classifier/temperature"] == "1.5"
    assert params["classifier/thresholds/COVID/0.95"] == "0.25"
    files = sorted((trained["data"] / "Normal" / "images").glob("*.png"))[:2]
    served = mlflow.pyfunc.load_model(logged.model_uri).predict(
        request_frame([f.read_bytes() for f in files]))
    assert list(served.columns) == ["label", *trained_model.classes]
