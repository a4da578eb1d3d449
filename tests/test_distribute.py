"""-P distribute=data_parallel on two virtual CPU devices, on TensorFlow and on JAX.

Each backend runs in a subprocess: the virtual devices must exist before the backend starts
(TensorFlow: two logical CPUs; JAX: ``--xla_force_host_platform_device_count=2``).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import make_dataset
from helpers import quick_config

from xraytrack.data.sequence import CachedImages
from xraytrack.errors import XrayTrackError
from xraytrack.training import distribute, fitting

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


TRAIN_ONE_WAY = """
import json, sys
sys.path.insert(0, sys.argv[2])
from helpers import quick_config
from xraytrack.training.train import run_training
print(json.dumps(run_training(quick_config(sys.argv[1], epochs=2, batch_size=16, augment=False,
                                           audit=False, distribute=sys.argv[3],
                                           experiment=sys.argv[3]))))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_hosts_train_as_one_and_only_the_chief_logs(tmp_path):
    """Two processes joined by keras.distribution.initialize (gloo over localhost, one CPU device
    each), as two hosts would be: one run, logged once, equal to a one-process run."""
    data = make_dataset(tmp_path / "data", extras=False)
    address = f"127.0.0.1:{_free_port()}"
    args = [sys.executable, "-c", TRAIN_ONE_WAY, str(data), str(TESTS)]
    hosts = [subprocess.Popen(args + ["data_parallel"], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=os.environ | {"KERAS_BACKEND": "jax",
                                                "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
                                                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                                                "KERAS_DISTRIBUTION_PROCESS_ID": str(i)})
             for i in (0, 1)]
    try:
        outputs = [h.communicate(timeout=900) for h in hosts]
    finally:
        for h in hosts:
            h.kill()
    for h, (_, err) in zip(hosts, outputs):
        assert h.returncode == 0, err[-4000:]
    assert json.loads(outputs[1][0].strip().splitlines()[-1]) is None
    assert "Process 1 of 2: training done" in outputs[1][0]
    alone = subprocess.run(args + ["none"], env=os.environ | {"KERAS_BACKEND": "jax"}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=900)
    assert alone.returncode == 0, alone.stderr[-4000:]

    shared = mlflow.search_runs(experiment_names=["data_parallel"], output_format="list")
    assert len(shared) == 1  # the worker made no run of its own
    run = shared[0]
    assert run.info.run_id == json.loads(outputs[0][0].strip().splitlines()[-1])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["distribute.processes"], params["distribute.replicas"],
            params["distribute.per_replica_batch"]) == ("2", "2", "8")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    single = mlflow.get_run(json.loads(alone.stdout.strip().splitlines()[-1]))
    for metric in ("val_loss", "test_macro_auc", "test_accuracy"):
        assert run.data.metrics[metric] == pytest.approx(single.data.metrics[metric], abs=2e-3)


def test_hosts_read_disjoint_shares_that_make_up_the_batch():
    pixels = np.arange(11 * 2 * 2, dtype=np.uint8).reshape(11, 2, 2)
    labels = np.arange(11) % 3

    def batches(shard=None):
        seq = CachedImages(pixels, np.arange(11), labels, 3, batch_size=4, shuffle=True, seed=5,
                           shard=shard)
        seq.start_at_epoch(1)
        return [seq[b][0][:, 0, 0, 0] for b in range(len(seq))]

    whole, first, second = batches(), batches((0, 2)), batches((1, 2))
    assert [len(b) for b in first] == [len(b) for b in second] == [2, 2, 1]
    for full, a, b in zip(whole, first, second):
        assert not set(a) & set(b)
        assert set(a) | set(b) <= set(full)
    # one image of the 11 is left out this epoch, so the last batch splits evenly
    assert sum(len(a) + len(b) for a, b in zip(first, second)) == 10


def test_work_that_stays_on_one_host_says_so(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    with pytest.raises(XrayTrackError, match="--seeds runs on one host"):
        distribute.single_host("--seeds")
    with pytest.raises(XrayTrackError, match="distribute=none cannot run over 2 hosts"):
        distribute.plan("none", 32)
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "2")
    with pytest.raises(XrayTrackError, match="PROCESS_ID must be 0 to 1"):
        distribute.hosts()


def test_a_second_copy_of_one_hosts_command_is_refused(tmp_path):
    """Each host locks its own checkpoint: a worker's command started twice on one host would
    otherwise share one backup; the chief's lock and another worker's are separate."""
    cfg = quick_config(tmp_path / "data", cache_dir=str(tmp_path / "cache"))
    with fitting.exclusive(cfg, 1):
        with pytest.raises(XrayTrackError, match=r"already running \(pid \d+, process 1 of a "):
            with fitting.exclusive(cfg, 1):
                pass
        with fitting.exclusive(cfg, 0), fitting.exclusive(cfg, 2):
            pass
    assert fitting.checkpoint_dir(cfg, 1) == fitting.checkpoint_dir(cfg).with_name(
        fitting.checkpoint_dir(cfg).name + "-process1")
