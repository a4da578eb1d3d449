"""Keep an interrupted run KILLED when ``mlflow run`` started it.

``mlflow run`` waits for the entry point's process and, when it exits non-zero, marks the run
FAILED unless it is "already terminated". In MLflow 3.17 that check compares the run's status
string with RunStatus' integer codes (``projects._maybe_set_run_terminated``), so it never
matches: the KILLED that xraytrack wrote on Ctrl-C or SIGTERM is overwritten with FAILED a moment
after the process exits. So an interrupted process leaves behind a small watcher, in a session
of its own, that waits for the ``mlflow run`` process to end and then puts KILLED back, only if
the status is FAILED (a status anyone set later is left alone).

    python -m xraytrack.tracking.killed_status RUN_ID PID PID_STARTED
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

WAIT_S = 600  # `mlflow run` marks the run right after the entry point exits; never wait longer


def mlflow_run_parent() -> psutil.Process | None:
    """The ``mlflow run`` process that started this one, if any."""
    try:
        parent = psutil.Process().parent()
        cmdline = parent.cmdline() if parent else []
    except psutil.Error:
        return None
    words = [os.path.basename(w) for w in cmdline[:4]]
    return parent if "mlflow" in words and "run" in cmdline[:4] else None


def keep_killed(run_id: str) -> bool:
    """Leave a watcher that restores KILLED once ``mlflow run`` has overwritten it; True when
    there is an ``mlflow run`` to watch."""
    parent = mlflow_run_parent()
    if parent is None:
        return False
    subprocess.Popen(
        [sys.executable, "-m", __name__, run_id, str(parent.pid), f"{parent.create_time():.2f}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # a Ctrl-C to the terminal's process group does not reach it
    return True


def _restore(run_id: str, pid: int, started: str) -> None:
    import mlflow

    try:
        watched = psutil.Process(pid)
        if f"{watched.create_time():.2f}" == started:
            watched.wait(timeout=WAIT_S)
    except psutil.NoSuchProcess:
        pass  # it has already ended
    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status == "FAILED":
        client.set_terminated(run_id, "KILLED")


if __name__ == "__main__":
    _restore(sys.argv[1], int(sys.argv[2]), sys.argv[3])
