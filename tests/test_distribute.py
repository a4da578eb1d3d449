"""-P distribute=data_parallel on two virtual CPU devices, on TensorFlow and on JAX.

Each backend runs in a subprocess: the virtual devices must exist before the backend starts
(TensorFlow: two logical CPUs; JAX: ``--xla_force_host_platform_device_count=2``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import make_dataset

from xraytrack.errors import XrayTrackError
from xraytrack.training import distribute

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent

TRAIN_BOTH_WAYS = """
import json, os, sys
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[2])
from helpers import quick_config
from xraytrack.training.train import run_training
runs = {mode: run_training(quick_config(sys.argv[1], epochs=2, batch_size=16, augment=False,
                                        audit=False, distribute=mode, experiment=mode))
        for mode in ("none", "data_parallel")}
print(json.dumps(runs))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_data_parallel_trains_logs_once_and_matches_one_device(backend, tmp_path):
    data = make_dataset(tmp_path / "data", extras=False)
    env = os.environ | {"KERAS_BACKEND": backend,
                        "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", TRAIN_BOTH_WAYS, str(data), str(TESTS)],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    single, parallel = (mlflow.get_run(runs[m]) for m in ("none", "data_parallel"))
    assert parallel.info.status == "FINISHED"
    params = parallel.data.params
    assert params["distribute.mode"] == "data_parallel" and params["distribute.replicas"] == "2"
    assert len(params["distribute.devices"].split(",")) == 2
    assert params["distribute.per_replica_batch"] == "8"
    assert single.data.params["distribute.mode"] == "none"
    # metrics are logged once per epoch, not once per replica
    history = mlflow.MlflowClient().get_metric_history(parallel.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    # the same steps on the same data: the same model, up to float rounding
    for metric in ("val_loss", "test_macro_auc", "test_accuracy"):
        assert parallel.data.metrics[metric] == pytest.approx(single.data.metrics[metric], abs=2e-3)


def test_settings_that_cannot_work_fail_before_a_run():
    with pytest.raises(XrayTrackError, match="unknown distribute mode"):
        distribute.plan("mirrored", 32)
    assert distribute.plan("none", 32) == distribute.Plan("none")
    # this test process sees one CPU device: auto stays on it, data_parallel says why it cannot
    assert distribute.plan("auto", 32).mode == "none"
    with pytest.raises(XrayTrackError, match="two or more devices"):
        distribute.plan("data_parallel", 32)


def test_a_batch_that_does_not_split_evenly_is_refused(monkeypatch):
    monkeypatch.setattr(distribute, "local_devices", lambda: ["/gpu:0", "/gpu:1", "/gpu:2"])
    with pytest.raises(XrayTrackError, match="multiple of 3"):
        distribute.plan("data_parallel", 32)
    assert distribute.plan("auto", 33).devices == ("/gpu:0", "/gpu:1", "/gpu:2")
