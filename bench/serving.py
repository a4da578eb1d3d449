"""Serving benchmark cases: the Keras classifier vs its ONNX twin vs bare ONNX Runtime.

    python bench/serving.py CASE [ARGS...]   prints one JSON object per row

Run through ``bench/run.py`` (``--only serving`` for this section alone). ``prepare`` logs both
classifiers of one MobileNetV2 (ImageNet weights, 160 px) into a store under ``$BENCH_SERVING_DIR``;
every other case loads them in a fresh process, so its peak memory is that way's own and the ONNX
rows never import TensorFlow. Requests carry a real X-ray file of the shared data, base64-encoded.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import DATA, WEIGHTS, emit  # noqa: E402

SIZE = 160
WORK = Path(os.environ.get("BENCH_SERVING_DIR", "/tmp/xraytrack-bench-serving"))
CLIENTS, REQUESTS_PER_CLIENT = 8, 25
HEAVY = ("tensorflow", "keras", "jax", "torch")


def _models() -> dict:
    return json.loads((WORK / "models.json").read_text())


def _image() -> bytes:
    """The first X-ray of the shared data, as a client would send it."""
    from xraytrack.data.index import index_dataset

    index = index_dataset(DATA, limit_per_class=1, seed=0)
    return (index.root / index.paths[0]).read_bytes()


def _timings(fn, reps: int) -> np.ndarray:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def _row(case: str, single: np.ndarray, batch: np.ndarray, **extra) -> None:
    emit(case=case, p50_ms=1000 * np.percentile(single, 50), p95_ms=1000 * np.percentile(single, 95),
         batch32_images_per_s=32 / np.median(batch), **extra)


def prepare() -> None:
    """Log the Keras classifier and its ONNX twin for one MobileNetV2 (untrained head: the
    compute does not depend on the weights' values)."""
    import mlflow

    from xraytrack.models import ModelSpec, build_model
    from xraytrack.serving.onnx_export import export_checked
    from xraytrack.tracking.model_logging import log_classifier, log_onnx_classifier, pip_requirements

    WORK.mkdir(parents=True, exist_ok=True)
    model = build_model("mobilenet", ModelSpec(4, SIZE, augment=False, weights=WEIGHTS))
    onnx_path = WORK / "model.onnx"
    diff = export_checked(model, SIZE, onnx_path)
    mlflow.set_tracking_uri(f"sqlite:///{WORK}/mlflow.db")
    if mlflow.get_experiment_by_name("bench-serving") is None:  # artifacts under WORK, not ./mlruns
        mlflow.create_experiment("bench-serving", artifact_location=(WORK / "artifacts").as_uri())
    mlflow.set_experiment("bench-serving")
    classes = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
    with mlflow.start_run():
        keras_uri = log_classifier(model, classes, SIZE, pip_requirements()).model_uri
        onnx_uri = log_onnx_classifier(onnx_path, classes, SIZE).model_uri
    (WORK / "models.json").write_text(json.dumps(
        {"tracking_uri": mlflow.get_tracking_uri(), "keras": keras_uri, "onnx": onnx_uri,
         "onnx_path": str(onnx_path)}))
    emit(case="prepare", onnx_max_abs_difference=diff)


def in_process(way: str) -> None:
    """Batch-1 latency and batch-32 throughput inside one process: 'keras' or 'onnx' pyfunc
    (encoded images in, as served), or bare ONNX Runtime on already-decoded pixels."""
    models = _models()
    png = _image()
    if way == "onnx_runtime":
        from xraytrack.data.images import decode_bytes
        from xraytrack.serving.onnx_classifier import session

        onnx = session(models["onnx_path"])
        name = onnx.get_inputs()[0].name
        pixels = decode_bytes(png, SIZE)[None, ..., None].astype("float32")
        one, many = pixels, np.repeat(pixels, 32, axis=0)
        single = _timings(lambda: onnx.run(None, {name: one}), 50)
        batch = _timings(lambda: onnx.run(None, {name: many}), 10)
        label = "bare ONNX Runtime (decoded pixels in)"
    else:
        import mlflow

        from xraytrack.serving.classifier import request_frame

        mlflow.set_tracking_uri(models["tracking_uri"])
        pyfunc = mlflow.pyfunc.load_model(models[way])
        one, many = request_frame([png]), request_frame([png] * 32)
        single = _timings(lambda: pyfunc.predict(one), 50)
        batch = _timings(lambda: pyfunc.predict(many), 10)
        label = f"{'Keras' if way == 'keras' else 'ONNX'} classifier pyfunc (image file in)"
    _row(f"in process: {label}", single, batch,
         heavy_modules=",".join(m for m in HEAVY if m in sys.modules) or "none")


def _post(base: str, body: bytes) -> float:
    start = time.perf_counter()
    req = urllib.request.Request(base + "/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    return time.perf_counter() - start


def _server_memory(port: int) -> tuple[float, bool]:
    """Resident MiB of the serving processes, and whether they mapped a TensorFlow library."""
    from servers import server_processes

    procs = server_processes(port)
    rss = sum(p.memory_info().rss for p in procs)
    tensorflow = any("tensorflow" in m.path.lower() for p in procs for m in p.memory_maps())
    return rss / 2**20, tensorflow


def http(way: str) -> None:
    """``mlflow models serve`` of one classifier: batch-1 latency, batch-32 throughput, then
    CLIENTS concurrent clients sending one image per request, REQUESTS_PER_CLIENT each."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from servers import free_port, mlflow_server

    from xraytrack.serving.classifier import encode_image

    models = _models()
    os.environ["MLFLOW_TRACKING_URI"] = models["tracking_uri"]
    rows = [[encode_image(_image())]]
    one = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()
    many = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows * 32}}).encode()
    port = free_port()
    args = ["models", "serve", "-m", models[way], "--env-manager", "local", "--host", "127.0.0.1"]
    with mlflow_server(args, "/ping", log_dir=WORK, port=port) as base:
        single = _timings(lambda: _post(base, one), 50)
        batch = _timings(lambda: _post(base, many), 10)
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            latencies = list(pool.map(lambda _: _post(base, one), range(CLIENTS * REQUESTS_PER_CLIENT)))
        elapsed = time.perf_counter() - start
        rss, tensorflow = _server_memory(port)
    _row(f"HTTP: {'Keras' if way == 'keras' else 'ONNX'} classifier served", single, batch,
         concurrent_requests_per_s=len(latencies) / elapsed,
         concurrent_p50_ms=1000 * np.percentile(latencies, 50),
         concurrent_p95_ms=1000 * np.percentile(latencies, 95),
         server_rss_mib=rss, server_has_tensorflow=tensorflow)


def environment(way: str) -> None:
    """Size of a fresh environment holding the logged model's requirements.txt: what a serving
    image adds on top of Python (no Docker here: the same install, measured on disk)."""
    import mlflow

    models = _models()
    mlflow.set_tracking_uri(models["tracking_uri"])
    reqs = Path(mlflow.pyfunc.get_model_dependencies(models[way]))
    venv = WORK / f"venv-{way}"
    subprocess.run(["uv", "venv", "--quiet", "--clear", "-p", "3.11", str(venv)], check=True)
    subprocess.run(["uv", "pip", "install", "--quiet", "-p", str(venv / "bin" / "python"),
                    "-r", str(reqs)], check=True)
    size = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=True)
    emit(case=f"environment of the {'Keras' if way == 'keras' else 'ONNX'} classifier",
         env_mib=float(size.stdout.split()[0]),
         requirements=" ".join(line.split("==")[0] for line in reqs.read_text().split()))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
