"""Tiny synthetic chest-X-ray-like datasets, made fresh by each test that needs one."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

CLASSES = ("COVID", "Normal", "Viral Pneumonia")
REAL_DATA = os.environ.get("XRAYTRACK_DATA_DIR")
REAL_WEIGHTS = os.environ.get("XRAYTRACK_WEIGHTS")


def class_image(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A noisy image whose mean brightness encodes its class: easy to learn, unique per draw."""
    base = 50 + 70 * label
    return np.clip(rng.normal(base, 25, (size, size)), 0, 255).astype(np.uint8)


def make_dataset(root: Path, n_per_class: int = 24, classes=CLASSES, extras: bool = True,
                 seed: int = 0) -> Path:
    """Kaggle layout: <Class>/images/*.png plus masks/, a metadata file and, with ``extras``,
    a corrupt PNG, an RGBA PNG, a 16-bit PNG, a JPEG and a near-duplicate."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        images = root / name / "images"
        masks = root / name / "masks"
        images.mkdir(parents=True)
        masks.mkdir()
        for i in range(n_per_class):
            Image.fromarray(class_image(label, rng)).save(images / f"{name}-{i}.png")
            Image.fromarray(np.full((48, 48), 255, np.uint8)).save(masks / f"{name}-{i}.png")
        (root / f"{name}.metadata.xlsx").write_bytes(b"not an image")
    if extras:
        first = root / classes[0] / "images"
        (first / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        rgba = np.dstack([class_image(0, rng)] * 3 + [np.full((48, 48), 255, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(first / "rgba.png")
        sixteen = (class_image(0, rng).astype(np.uint16) * 257)
        Image.fromarray(sixteen).save(first / "sixteen.png")
        Image.fromarray(class_image(0, rng)).convert("RGB").save(first / "photo.jpg", quality=90)
        dup = np.asarray(Image.open(first / f"{classes[0]}-0.png")).astype(np.int16) + 2
        Image.fromarray(np.clip(dup, 0, 255).astype(np.uint8)).save(first / "near-duplicate.png")
    (root / "README.md.txt").write_text("synthetic")
    return root


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): one worker per core, at most four. A worker may run up to
    five TensorFlow processes at once (tests/test_tracking_server.py's team), about 1 GB each, so
    more workers would trade the memory of a small machine for little time."""
    return max(1, min(os.cpu_count() or 1, 4))


def pytest_collection_modifyitems(config, items) -> None:
    """Files with slow or integration tests first, each file's tests kept together and in order.
    With `--dist loadfile` a long file started last would finish alone on one core while the
    others idle; started first, the short files fill the other workers meanwhile."""
    def heavy(item) -> bool:
        return any(item.get_closest_marker(m) for m in ("slow", "integration"))

    heavy_files = {item.path for item in items if heavy(item)}
    items.sort(key=lambda item: item.path not in heavy_files)  # stable: file order kept


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "COVID-19_Radiography_Dataset")


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch):
    """Each test gets its own MLflow store and xraytrack cache, never the user's."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("XRAYTRACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID and remembers the experiment, and
    # mlflow.set_tracking_uri remembers the store over the environment: each would point the next
    # test (and its `mlflow run` subprocesses) at another test's store.
    import mlflow.tracking._tracking_service.utils
    import mlflow.tracking.fluent

    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.tracking._tracking_service.utils._tracking_uri = None


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """One quick real training run in a store of its own, shared by a module's tests."""
    from helpers import quick_config

    from xraytrack.training.train import run_training

    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("XRAYTRACK_CACHE_DIR", str(root / "cache"))
        mp.chdir(root)
        data = make_dataset(root / "data", n_per_class=24)
        run_id = run_training(quick_config(data, epochs=2, experiment="xraytrack", audit=True))
    return {"uri": f"sqlite:///{root / 'mlflow.db'}", "run_id": run_id, "data": data, "root": root}


@pytest.fixture
def trained(trained_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_store["uri"])
    return trained_store
