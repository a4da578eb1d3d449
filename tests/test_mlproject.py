"""`mlflow run` itself, as a user runs it: the run it creates is the one xraytrack logs into."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def mlflow_run(entry_point: str, *params: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", entry_point,
           "--env-manager", "local", "--experiment-name", "project"]
    for p in params:
        cmd += ["-P", p]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_entry_point_takes_exactly_the_parameters_its_command_uses():
    """The shared parameter blocks are merged by YAML; MLflow must see each one in full."""
    import re

    from mlflow.projects._project_spec import load_project

    project = load_project(str(REPO))
    assert set(project._entry_points) == {"simple_cnn", "dropout_cnn", "adapted_cnn", "mobilenet",
                                          "binary", "compare", "tune", "evaluate"}
    for name, entry in project._entry_points.items():
        used = set(re.findall(r"\{(\w+)\}", entry.command))
        assert used == set(entry.parameters), name
        assert "data_dir" in used, name


@pytest.mark.slow
def test_mlflow_run_entry_point_trains_into_its_own_run(dataset, tmp_path):
    done = mlflow_run("simple_cnn", f"data_dir={dataset}", "epochs=1", "img_size=32",
                      "limit_per_class=20", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["project"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "1"  # the entry-point argument, logged by mlflow run
    assert run.data.params["cfg.epochs"] == "1" and run.data.params["cfg.img_size"] == "32"
    assert run.data.params["cfg.batch_size"] == "32"  # blank: experiments/simple_cnn.yaml's
    assert "test_macro_f1" in run.data.metrics
    assert run.data.tags["mlflow.project.entryPoint"] == "simple_cnn"


@pytest.mark.slow
def test_a_failing_entry_point_ends_failed(tmp_path):
    done = mlflow_run("simple_cnn", f"data_dir={tmp_path / 'missing'}", cwd=tmp_path)
    assert done.returncode != 0
    assert "does not exist" in done.stderr
    (run,) = mlflow.search_runs(experiment_names=["project"], output_format="list")
    assert run.info.status == "FAILED"


@pytest.mark.slow
def test_an_interrupted_entry_point_ends_killed_not_failed(dataset, tmp_path):
    """`mlflow run` marks FAILED whatever exits non-zero, over the KILLED xraytrack wrote
    (tracking.killed_status): the run must still end KILLED, and say it was interrupted."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "simple_cnn", "--env-manager",
           "local", "--experiment-name", "project", "-P", f"data_dir={dataset}", "-P", "epochs=50",
           "-P", "img_size=32", "-P", "audit=false"]
    launcher = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    backups = Path(os.environ["XRAYTRACK_CACHE_DIR"]).glob
    deadline = time.monotonic() + 300
    while not any(json.loads(m.read_text())["epoch"] >= 1
                  for m in backups("checkpoints/*/backup/training_metadata.json")):
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    (entry_point,) = psutil.Process(launcher.pid).children()
    entry_point.terminate()
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0 and "Interrupted" in stderr, stderr[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["project"], output_format="list")
    deadline = time.monotonic() + 60  # the watcher restores KILLED after `mlflow run` exits
    while run.info.status != "KILLED" and time.monotonic() < deadline:
        time.sleep(0.5)
        run = mlflow.get_run(run.info.run_id)
    assert run.info.status == "KILLED"
