"""A distributed search's roles: keras-tuner's chief and workers, as xraytrack runs them.

keras-tuner serves the oracle from the chief (KERASTUNER_TUNER_ID=chief) at
KERASTUNER_ORACLE_IP/PORT; any other id is a worker that asks it for trials over gRPC. This
module holds what xraytrack adds so that a process that stops (Ctrl-C, a lost node) ends in a
state the same command takes up again: workers file each trial under the chief's current parent
run, a restarted chief can take reports of trials it handed out before it stopped, and a worker
that loses the chief says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from datetime import datetime

import keras_tuner as kt
import mlflow

from xraytrack.errors import XrayTrackError


def role() -> str:
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return "single" if tuner_id is None else "chief" if tuner_id == "chief" else "worker"


def how_to_go_on() -> str:
    """What an interrupted process of a distributed search tells its user, by role."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    if role() == "worker":
        return (f" The chief waits for any trial it gave this worker: run it again with "
                f"KERASTUNER_TUNER_ID={tuner_id}.")
    if role() == "chief":
        return " Its workers wait for the chief (up to an hour, keras-tuner's limit)."
    return ""


def running_parent(key: str, timeout: float = 600) -> mlflow.entities.Run:
    """The chief's parent run of this search; the chief may still be starting. A restarted
    chief opens a new one, so workers look it up for each trial."""
    deadline = time.monotonic() + timeout
    while True:
        found = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"tags.`xraytrack.search_key` = '{key}' AND attributes.status = 'RUNNING'",
            output_format="list", max_results=1)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise XrayTrackError(f"no running search with key {key}: start the chief first")
        time.sleep(2)


@contextlib.contextmanager
def worker_record(parent_run_id: str):
    """Under ``mlflow run`` a worker gets a run of its own (MLFLOW_RUN_ID) before it starts, and
    MLflow took it as the first trial's run, outside the search. It becomes this worker's record
    instead: a child of the search's parent run with role ``worker``, which ``mlflow run`` ends
    (a Ctrl-C ends it KILLED, as any run of an interrupted command)."""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id is None:
        yield
        return
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    client = mlflow.MlflowClient()
    client.update_run(run_id, name=f"worker-{tuner_id}")
    for key, value in {"mlflow.parentRunId": parent_run_id, "xraytrack.role": "worker",
                       "xraytrack.tuner_id": tuner_id}.items():
        client.set_tag(run_id, key, value)
    try:
        yield
    finally:
        os.environ["MLFLOW_RUN_ID"] = run_id


def restore_display(oracle) -> None:
    """keras-tuner saves the oracle before its display notes a new trial's start, so a chief
    reloaded after a restart did not know when the trials then running began. A worker's report
    of one raised KeyError inside the oracle's lock: the worker ended in a gRPC traceback and the
    chief, waiting on that lock, hung for good. The times are only printed, so now will do."""
    if not isinstance(oracle, kt.Oracle):  # a worker's client of the chief's oracle
        return
    display, now = oracle._display, datetime.now()
    display.search_start = display.search_start or now
    for number, trial_id in enumerate(sorted(oracle.trials), start=1):
        display.trial_start.setdefault(trial_id, now)
        display.trial_number.setdefault(trial_id, number)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def watching_the_chief(every: float = 10.0, patience: int = 3):
    """A worker's note when its chief stops answering, and when it answers again: keras-tuner
    waits for the chief silently, up to an hour, which looks like a hang. ``patience`` checks
    in a row first, so the chief's own end of the search does not count."""
    host, port = os.environ["KERASTUNER_ORACLE_IP"], int(os.environ["KERASTUNER_ORACLE_PORT"])
    stop = threading.Event()

    def watch():
        missed = 0
        while not stop.wait(every):
            if _answers(host, port):
                if missed >= patience:
                    print(f"\nThe search's chief at {host}:{port} answers again.", flush=True)
                missed = 0
                continue
            missed += 1
            if missed == patience:
                print(f"\nThe search's chief at {host}:{port} does not answer; this worker waits "
                      "for it (keras-tuner gives it an hour). If it stopped, run its command "
                      "again.", flush=True)

    thread = threading.Thread(target=watch, name="chief-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def lost_chief(exc) -> XrayTrackError:
    """A worker's gRPC error as one line: the chief stopped, or refused a report."""
    where = f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
    code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return XrayTrackError(f"lost the search's chief at {where} ({code}: {details}); the trials "
                          "this worker finished are logged. Once the chief runs again (the same "
                          "command with KERASTUNER_TUNER_ID=chief), re-run this worker")
