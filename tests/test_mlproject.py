"""`mlflow run` itself, as a user runs it: the run it creates is the one xraytrack logs into."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
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
