"""Run lifecycle: the only place a run is opened, adopted or reopened, so none stays RUNNING."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

import mlflow

from xraytrack.tracking import sysinfo


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def tracked_run(experiment: str, run_name: str | None = None, nested: bool = False,
                parent_run_id: str | None = None):
    """Start (or, under ``mlflow run``, adopt) a run and end it FINISHED, FAILED or KILLED.

    The tracking store is MLflow's own default (``sqlite:///mlflow.db`` in the working folder),
    the same one ``mlflow run`` and ``mlflow ui`` use; ``MLFLOW_TRACKING_URI`` overrides it.
    """
    child = nested or parent_run_id is not None
    nested = nested or (parent_run_id is not None and mlflow.active_run() is not None)
    if not child and "MLFLOW_RUN_ID" not in os.environ:
        mlflow.set_experiment(experiment)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if main_thread else None
    run = mlflow.start_run(run_name=run_name, nested=nested, parent_run_id=parent_run_id,
                           log_system_metrics=not child)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def reopened_run(run_id: str):
    """Add to a finished run (an audit after the fact) without changing how it ended or how
    long it took, whether the addition succeeds or fails."""
    run = mlflow.get_run(run_id)
    try:
        with mlflow.start_run(run_id=run_id):
            yield run
    finally:
        mlflow.MlflowClient().set_terminated(run_id, run.info.status, end_time=run.info.end_time)


def log_system_info() -> dict:
    info = sysinfo.system_info()
    mlflow.log_dict(info, "system_info.json")
    mlflow.set_tags(sysinfo.tags(info))
    commit = sysinfo.git_commit()
    if commit and not mlflow.active_run().data.tags.get("mlflow.source.git.commit"):
        mlflow.set_tag("mlflow.source.git.commit", commit)
    return info
