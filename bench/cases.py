"""Benchmark cases, one per process so each row's peak memory (RSS) is its own.

    python bench/cases.py CASE [ARGS...]   prints one JSON object: the row of the table

Run through bench/run.py, which sets the data paths and writes docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

DATA = os.environ.get("XRAYTRACK_DATA_DIR", "")
WEIGHTS = os.environ.get("XRAYTRACK_WEIGHTS")
DEFAULT_SIZE = {"simple_cnn": 150, "dropout_cnn": 150, "adapted_cnn": 150, "mobilenet": 160}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(**row) -> None:
    print(json.dumps(row | {"peak_rss_mib": round(peak_rss_mib())}))


def _index(limit: int = 0):
    from xraytrack.data.index import index_dataset

    return index_dataset(DATA, limit_per_class=limit, seed=0)


def _subset_dir(index, tmp: str) -> str:
    """The same images for the directory-based loaders: symlinks in a temp folder, never in data."""
    root = Path(tmp) / "subset"
    for rel in index.paths:
        cls, name = rel.split("/")[0], Path(rel).name
        (root / cls).mkdir(parents=True, exist_ok=True)
        (root / cls / name).symlink_to(index.root / rel)
    return str(root)


# 1. Input pipeline -------------------------------------------------------------------------------

def pipeline_cached(size: str) -> None:
    from xraytrack.data.cache import load_or_build
    from xraytrack.data.sequence import CachedImages

    index, size = _index(), int(size)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = load_or_build(index, size, tmp)
        build = time.perf_counter() - start
        seq = CachedImages(cache.pixels, np.arange(len(index.paths)), index.labels,
                           len(index.classes), 32, shuffle=True)
        start = time.perf_counter()
        for i in range(len(seq)):
            seq[i]
        read = time.perf_counter() - start
    emit(case=f"pipeline cached {size}px", images=len(index.paths),
         images_per_s=len(index.paths) / read, build_s=build,
         build_images_per_s=len(index.paths) / build)


def pipeline_seed(size: str) -> None:
    """The seed's ImageDataGenerator(rescale=1/255).flow_from_directory, decoding every epoch.

    Pointed, like the seed, at the dataset root: it walks every sub-folder (masks too)."""
    import tensorflow as tf

    size = int(size)
    gen = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        DATA, target_size=(size, size), batch_size=32, class_mode="categorical", shuffle=True)
    start = time.perf_counter()
    for i in range(len(gen)):
        gen[i]
    elapsed = time.perf_counter() - start
    emit(case=f"pipeline seed flow_from_directory {size}px", images=gen.samples,
         images_per_s=gen.samples / elapsed)


def pipeline_keras_dir(size: str) -> None:
    import keras

    size = int(size)
    index = _index()
    with tempfile.TemporaryDirectory() as tmp:
        ds = keras.utils.image_dataset_from_directory(
            _subset_dir(index, tmp), image_size=(size, size), batch_size=32, label_mode="categorical",
            color_mode="grayscale", verbose=False)
        start = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in ds)
        elapsed = time.perf_counter() - start
    emit(case=f"pipeline image_dataset_from_directory {size}px", images=n, images_per_s=n / elapsed)


# 2. Training throughput ----------------------------------------------------------------------------

def train_step(architecture: str, jit: str, steps: str = "20", size: str = "") -> None:
    import keras

    from xraytrack.models import ModelSpec, build_model

    size, steps, batch = int(size or DEFAULT_SIZE[architecture]), int(steps), 32
    weights = WEIGHTS if architecture == "mobilenet" else None
    model = build_model(architecture, ModelSpec(4, size, augment=architecture in ("adapted_cnn", "mobilenet"),
                                                weights=weights))
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                  jit_compile=jit == "xla")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * 4, size, size, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 4, len(x)), 4)
    start = time.perf_counter()
    model.train_on_batch(x[:batch], y[:batch])  # build + compile
    first = time.perf_counter() - start
    for i in range(2):
        model.train_on_batch(x[:batch], y[:batch])
    start = time.perf_counter()
    for i in range(steps):
        j = (i % 4) * batch
        model.train_on_batch(x[j:j + batch], y[j:j + batch])
    rate = steps * batch / (time.perf_counter() - start)
    train_images = 10252  # the shared data's training split (70%)
    emit(case=f"train {architecture} {size}px {'XLA' if jit == 'xla' else 'no XLA'}",
         images_per_s=rate, epoch_s=train_images / rate, first_step_s=first,
         xla_used=bool(model.jit_compile))  # Keras turns XLA off for layers that cannot compile


def epoch_project(n: str) -> None:
    """One simple_cnn epoch through xraytrack: cache (built here, counted) + fit."""
    from xraytrack.data.cache import load_or_build
    from xraytrack.data.sequence import CachedImages
    from xraytrack.models import ModelSpec, build_model

    index = _index(limit=int(n) // 4)
    model = build_model("simple_cnn", ModelSpec(4, 150, augment=False))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = load_or_build(index, 150, tmp)
        seq = CachedImages(cache.pixels, np.arange(len(index.paths)), index.labels, 4, 32, shuffle=True)
        model.fit(seq, epochs=1, verbose=0)
        elapsed = time.perf_counter() - start
    emit(case="epoch simple_cnn, xraytrack (cache build included)", images=len(index.paths),
         epoch_s=elapsed, images_per_s=len(index.paths) / elapsed)


def epoch_seed(n: str) -> None:
    """The seed's script, faithfully: tf.keras Sequential, ImageDataGenerator, RGB 150x150."""
    import tensorflow as tf
    from tensorflow.keras import layers, models

    index = _index(limit=int(n) // 4)
    with tempfile.TemporaryDirectory() as tmp:
        gen = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
            _subset_dir(index, tmp), target_size=(150, 150), batch_size=32, class_mode="categorical")
        model = models.Sequential([
            layers.Input((150, 150, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(128, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(4, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(gen, epochs=1, verbose=0)
        elapsed = time.perf_counter() - start
    emit(case="epoch simple_cnn, seed script (ImageDataGenerator)", images=gen.samples,
         epoch_s=elapsed, images_per_s=gen.samples / elapsed)


# 3. Inference -------------------------------------------------------------------------------------

def flops_per_image(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers (they are >99% of the work)."""
    import keras

    total = 0.0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w = layer.output.shape[1:3]
            total += 2 * h * w * np.prod(layer.kernel_size) * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:4]
            total += 2 * h * w * c_out * np.prod(layer.kernel_size) * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return float(total)


def matmul_peak() -> None:
    import keras

    a = keras.random.normal((2048, 2048))
    keras.ops.matmul(a, a)
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    gflops = reps * 2 * 2048**3 / (time.perf_counter() - start) / 1e9
    emit(case="matmul peak (float32 2048x2048, keras.ops)", gflops=gflops)


def _timings(fn, batch, reps):
    fn(batch)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def inference(architecture: str) -> None:
    import mlflow

    from xraytrack.models import ModelSpec, build_model
    from xraytrack.serving.classifier import example_png
    from xraytrack.tracking.model_logging import log_classifier, log_keras_model, pip_requirements

    size = DEFAULT_SIZE[architecture]
    weights = WEIGHTS if architecture == "mobilenet" else None
    model = build_model(architecture, ModelSpec(4, size, augment=False, weights=weights))
    flops = flops_per_image(model)
    x32 = np.random.default_rng(0).uniform(0, 255, (32, size, size, 1)).astype("float32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("bench")
        classes = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
        with mlflow.start_run():
            keras_info = log_keras_model(model, classes, size, pip_requirements())
            clf_info = log_classifier(model, classes, size, pip_requirements())
        pyfunc = mlflow.pyfunc.load_model(keras_info.model_uri)
        ways = {
            "model.predict": lambda b: model.predict(b, verbose=0),
            "direct call": lambda b: model(b, training=False),
            "MLflow pyfunc (arrays)": lambda b: pyfunc.predict(b),
        }
        for way, fn in ways.items():
            single = _timings(fn, x32[:1], 50)
            batch = _timings(fn, x32, 10)
            rows.append((way, single, batch))
        png = example_png(size)
        rows.append(("HTTP, served classifier (PNG)",) + _served(clf_info.model_uri, png, tmp))
    for way, single, batch in rows:
        rate = 32 / np.median(batch)
        emit(case=f"infer {architecture} {size}px {way}", p50_ms=1000 * np.percentile(single, 50),
             p95_ms=1000 * np.percentile(single, 95), images_per_s=rate,
             gflops_per_image=flops / 1e9, achieved_gflops=rate * flops / 1e9)


def _served(model_uri, png, tmp):
    import urllib.request

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from servers import mlflow_server

    from xraytrack.serving.classifier import encode_image

    def post(n):
        body = json.dumps({"dataframe_split": {"columns": ["image"],
                                               "data": [[encode_image(png)]] * n}}).encode()
        req = urllib.request.Request(base + "/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()

    args = ["models", "serve", "-m", model_uri, "--env-manager", "local", "--host", "127.0.0.1"]
    with mlflow_server(args, "/ping", log_dir=Path(tmp)) as base:
        return _timings(lambda n: post(n), 1, 50), _timings(lambda n: post(n), 32, 10)


# 4. MLflow overhead --------------------------------------------------------------------------------

def mlflow_overhead(mode: str) -> None:
    from xraytrack.config import TrainConfig

    cfg = TrainConfig(architecture="simple_cnn", data_dir=DATA, limit_per_class=150, epochs=2,
                      augment=False, audit=False, experiment="bench")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XRAYTRACK_CACHE_DIR"] = tmp
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        start = time.perf_counter()
        if mode == "tracked":
            from xraytrack.training.train import run_training

            run_training(cfg)
        else:
            _untracked(cfg)
        elapsed = time.perf_counter() - start
    emit(case=f"simple_cnn 600 images 2 epochs, {mode}", wall_s=elapsed)


def _untracked(cfg) -> None:
    """The same data, model, fit and test scoring as run_training, with no MLflow call."""
    from xraytrack.evaluation import metrics
    from xraytrack.models import build_model
    from xraytrack.training.train import load_data, model_spec, resolve

    cfg, index = resolve(cfg)
    data = load_data(cfg, index)
    model = build_model(cfg.architecture, model_spec(cfg))
    model.fit(data.sequence("train", cfg.batch_size, shuffle=True, seed=cfg.seed),
              validation_data=data.sequence("val", cfg.batch_size), epochs=cfg.epochs, verbose=0)
    probs = model.predict(data.sequence("test", cfg.batch_size), verbose=0)
    metrics.scores(data.labels("test"), probs, data.classes)


# 5. Backends ---------------------------------------------------------------------------------------

def system_tags() -> None:
    """The tags a run on this backend and device gets (GPU name, memory, driver, CUDA build)."""
    from xraytrack.tracking import sysinfo

    emit(case="system tags", **sysinfo.tags(sysinfo.system_info()))


def explain_step(architecture: str, size: str = "") -> None:
    """Grad-CAM takes gradients through the backend's own autodiff: time it and check its maps."""
    from xraytrack.explain.gradcam import gradcam
    from xraytrack.models import ModelSpec, build_model

    size = int(size or DEFAULT_SIZE[architecture])
    weights = WEIGHTS if architecture == "mobilenet" else None
    model = build_model(architecture, ModelSpec(4, size, augment=False, weights=weights))
    images = np.random.default_rng(0).uniform(0, 255, (32, size, size, 1)).astype("float32")
    gradcam(model, images[:16])  # trace/compile
    start = time.perf_counter()
    heatmaps, probs = gradcam(model, images)
    elapsed = time.perf_counter() - start
    valid = (heatmaps.shape == images.shape[:3] and heatmaps.min() >= 0 and heatmaps.max() <= 1
             and np.allclose(probs.sum(axis=1), 1, atol=1e-4))
    emit(case=f"gradcam {architecture} {size}px", ms_per_image=1000 * elapsed / len(images),
         heatmaps_valid=bool(valid))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
