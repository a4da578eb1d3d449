"""The model code is Keras 3 only: the same tests pass on the JAX and PyTorch backends.

Each backend runs in a subprocess (Keras picks its backend once per process). CI installs JAX
through the dev extra; PyTorch is checked where it is installed.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PORTABLE = ["test_models.py", "test_evaluation.py", "test_audit.py",
            "test_train.py::test_a_run_logs_params_metrics_artifacts_dataset_and_a_loadable_model",
            "test_train.py::test_an_interrupted_run_is_killed_and_the_same_command_resumes"]


@pytest.mark.slow
@pytest.mark.parametrize("backend, module", [("jax", "jax"), ("torch", "torch")])
def test_training_evaluation_and_gradcam_on_another_backend(backend, module, tmp_path):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    env = os.environ | {"KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path}",
         *[str(TESTS / t) for t in PORTABLE]],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
