"""The classifier exported to ONNX: same probabilities as Keras, served without TensorFlow."""

import json
import subprocess
import sys
import urllib.request

import keras
import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from dicoms import write_xray
from mlflow.entities import LoggedModelStatus
from servers import free_port, mlflow_server, server_processes, venv_env

from xraytrack.cli import main
from xraytrack.evaluation.calibration import Calibration
from xraytrack.models import ModelSpec, build_model
from xraytrack.serving.classifier import XrayClassifier, encode_image, request_frame
from xraytrack.serving.onnx_classifier import OnnxClassifier
from xraytrack.serving.onnx_export import TOLERANCE, check_images, export_checked, max_difference
from xraytrack.tracking.model_logging import CLASSIFIER, ONNX_CLASSIFIER
from xraytrack.tracking.registry import logged_model_uri

pytestmark = pytest.mark.slow

def untrained(architecture: str, n_classes: int, size: int) -> keras.Model:
    """A freshly built model. A fresh MobileNetV2 answers 1/n for every image (its activations
    fade to ~1e-13 through 50 BatchNorm layers), so its BatchNorm scales are tripled: different
    images then get different answers, and a wrong graph shows."""
    model = build_model(architecture, ModelSpec(n_classes, size, augment=True, weights="none"))
    for v in model.weights:
        if v.path.endswith("gamma"):
            v.assign(v.numpy() * 3)
    return model


ARCHITECTURES = [("simple_cnn", 4), ("dropout_cnn", 4), ("adapted_cnn", 4), ("mobilenet", 4),
                 ("simple_cnn", 2)]  # the last: the binary entry point's model


@pytest.mark.parametrize("architecture,n_classes", ARCHITECTURES)
def test_onnx_probabilities_match_keras_for_every_architecture(architecture, n_classes, tmp_path):
    keras.utils.set_random_seed(0)
    size = 32
    model = untrained(architecture, n_classes, size)
    pixels = check_images(size)
    keras_probs = model.predict(pixels, verbose=0)
    assert np.ptp(keras_probs, axis=0).max() > 1e-3  # the images give different answers

    diff = export_checked(model, size, tmp_path / "m.onnx")
    assert diff <= TOLERANCE
    assert max_difference(model, tmp_path / "m.onnx", pixels) == diff
    # what a refused export looks like: another model's graph is far off
    other = untrained(architecture, n_classes, size)
    other.set_weights([w[::-1] if w.ndim == 1 else w for w in other.get_weights()])
    assert max_difference(other, tmp_path / "m.onnx", pixels) > TOLERANCE


def test_onnx_classifier_answers_like_the_keras_classifier(tmp_path, dataset):
    model = build_model("simple_cnn", ModelSpec(3, 32, augment=False))
    export_checked(model, 32, tmp_path / "m.onnx")
    classes, calibration = ["COVID", "Normal", "Viral Pneumonia"], Calibration(temperature=1.7)
    # more than one ONNX batch, with the RGBA, 16-bit and JPEG files of the synthetic set
    files = [f for f in sorted(dataset.rglob("images/*")) if f.name != "corrupt.png"][:40]
    files.append(write_xray(tmp_path / "x.dcm", np.random.default_rng(0).integers(0, 4096, (40, 40)),
                            window=(2048, 4096)))
    frame = request_frame([f.read_bytes() for f in files])
    ours = OnnxClassifier.from_file(str(tmp_path / "m.onnx"), classes, 32, calibration).predict(None, frame)
    theirs = XrayClassifier.from_keras(model, classes, 32, calibration).predict(None, frame)
    assert list(ours.columns) == list(theirs.columns) == ["label", *classes]
    assert (ours["label"] == theirs["label"]).all()
    np.testing.assert_allclose(ours[classes].to_numpy(), theirs[classes].to_numpy(), atol=TOLERANCE)


LOAD_WITHOUT_TF = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"image": json.loads(sys.argv[2])}))
print(json.dumps({"heavy": sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules),
                  "probs": out.drop(columns="label").to_numpy().tolist()}))
"""


def test_export_logs_an_onnx_classifier_that_loads_without_tensorflow(trained, monkeypatch):
    with monkeypatch.context() as patched:  # Ctrl-C while the model's files are being uploaded
        patched.setattr(mlflow.MlflowClient, "log_model_artifacts", ctrl_c)
        cut = CliRunner().invoke(main, ["export", trained["run_id"]])
    assert cut.exit_code == 130
    (pending,) = mlflow.search_logged_models(  # MLflow leaves it PENDING, without its files
        experiment_ids=[mlflow.get_run(trained["run_id"]).info.experiment_id], output_format="list",
        filter_string=f"source_run_id = '{trained['run_id']}' AND name = '{ONNX_CLASSIFIER}'")
    assert pending.status == LoggedModelStatus.PENDING
    result = CliRunner().invoke(main, ["export", trained["run_id"]])  # not "already has" it
    assert result.exit_code == 0, result.output
    assert "largest difference from Keras" in result.output
    run = mlflow.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["onnx_max_abs_difference"] <= TOLERANCE
    again = CliRunner().invoke(main, ["export", f"runs:/{trained['run_id']}/model"])
    assert "already has its ONNX classifier" in again.output

    images = sorted((trained["data"] / "COVID" / "images").glob("*.png"))[:3]
    encoded = [encode_image(f.read_bytes()) for f in images]
    uri = logged_model_uri(run, ONNX_CLASSIFIER)
    assert pending.model_id not in uri
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TF, uri, json.dumps(encoded)],
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    keras_probs = mlflow.pyfunc.load_model(logged_model_uri(run, CLASSIFIER)).predict(
        request_frame([f.read_bytes() for f in images])).drop(columns="label").to_numpy()
    np.testing.assert_allclose(answer["probs"], keras_probs, atol=TOLERANCE)


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def test_export_of_an_unknown_run_is_one_line(trained):
    result = CliRunner().invoke(main, ["export", "0" * 32])
    assert result.exit_code != 0
    assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1


def _mapped_libraries(port: int) -> set[str]:
    """Shared libraries mapped by the server listening on ``port``."""
    return {m.path for proc in server_processes(port) for m in proc.memory_maps()}


def test_register_onnx_serves_the_champion_over_http_without_tensorflow(trained, tmp_path):
    result = CliRunner().invoke(main, ["register", "--name", "cxr", "--onnx"])
    assert result.exit_code == 0, result.output
    assert "models:/cxr-onnx@champion" in result.output
    again = CliRunner().invoke(main, ["register", "--name", "cxr", "--onnx"])
    assert "already is models:/cxr-onnx@champion" in again.output
    version = mlflow.MlflowClient().get_model_version_by_alias("cxr-onnx", "champion")
    assert version.tags["source_run_id"] == trained["run_id"]

    images = sorted((trained["data"] / "Normal" / "images").glob("*.png"))[:4]
    body = {"dataframe_split": {"columns": ["image"],
                                "data": [[encode_image(f.read_bytes())] for f in images]}}
    port = free_port()
    args = ["models", "serve", "-m", "models:/cxr-onnx@champion", "--env-manager", "local",
            "--host", "127.0.0.1"]
    with mlflow_server(args, "/ping", log_dir=tmp_path, port=port) as base:
        req = urllib.request.Request(base + "/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            served = json.loads(r.read())["predictions"]
        libraries = _mapped_libraries(port)
    assert any("onnxruntime" in p for p in libraries)
    assert not [p for p in libraries if "tensorflow" in p.lower()]
    keras_out = mlflow.pyfunc.load_model("models:/cxr@champion").predict(
        request_frame([f.read_bytes() for f in images]))
    assert [row["label"] for row in served] == list(keras_out["label"])
    classes = [c for c in keras_out.columns if c != "label"]
    np.testing.assert_allclose([[row[c] for c in classes] for row in served],
                               keras_out[classes].to_numpy(), atol=TOLERANCE)
