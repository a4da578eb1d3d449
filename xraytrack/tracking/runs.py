"""Run lifecycle: the only place a run is opened, adopted or reopened, so none stays RUNNING."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from contextlib import contextmanager

import mlflow
import psutil

from xraytrack.tracking import killed_status, sysinfo
from xraytrack.tracking.store import is_lost, reason

log = logging.getLogger(__name__)

# Who is running a run: a run whose process is gone (SIGKILL, OOM, a pre-empted node) can then be
# told from one that is still training, and marked KILLED instead of staying RUNNING for good.
HOST, PID, PID_STARTED = "xraytrack.host", "xraytrack.pid", "xraytrack.pid_started"
ENDED_BY = "xraytrack.ended_by"

killed_here: list[str] = []  # the runs this process ended KILLED: what its Ctrl-C message says


class _Interrupt:
    """SIGTERM, and Ctrl-C, raise one KeyboardInterrupt; the signals after it are dropped until
    the outermost run has ended. `mlflow run` answers the terminal's Ctrl-C by sending the entry
    point SIGTERM a moment later: raised again, inside the handler that marks the runs KILLED,
    that second signal left a tune's parent run FAILED."""

    raised = False

    @classmethod
    def handler(cls, signum, frame):
        if not cls.raised:
            cls.raised = True
            raise KeyboardInterrupt(f"signal {signum}")

    @classmethod
    def install(cls) -> dict:
        """Returns the handlers to put back. SIGINT is taken only where it would interrupt anyway
        (a job started in the background ignores it, and must go on ignoring it)."""
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, cls.handler)}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, cls.handler)
        return previous

    @classmethod
    def restore(cls, previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if previous[signal.SIGTERM] != cls.handler:  # the outermost run: signals count again
            cls.raised = False


@contextmanager
def tracked_run(experiment: str, run_name: str | None = None, nested: bool = False,
                parent_run_id: str | None = None):
    """Start (or, under ``mlflow run``, adopt) a run and end it FINISHED, FAILED or KILLED.

    The tracking store is MLflow's own default (``sqlite:///mlflow.db`` in the working folder),
    the same one ``mlflow run`` and ``mlflow ui`` use; ``MLFLOW_TRACKING_URI`` overrides it.
    """
    child = nested or parent_run_id is not None
    adopted = not child and "MLFLOW_RUN_ID" in os.environ  # `mlflow run` started it
    nested = nested or (parent_run_id is not None and mlflow.active_run() is not None)
    if not child and "MLFLOW_RUN_ID" not in os.environ:
        mlflow.set_experiment(experiment)
    main_thread = threading.current_thread() is threading.main_thread()
    run = mlflow.start_run(run_name=run_name, nested=nested, parent_run_id=parent_run_id,
                           log_system_metrics=not child)
    previous = _Interrupt.install() if main_thread else None  # put back however the run ends
    try:
        mlflow.set_tags(process_tags())
        yield run
    except KeyboardInterrupt:
        _end("KILLED")
        killed_here.append(run.info.run_id)
        if adopted:
            killed_status.keep_killed(run.info.run_id)
        raise
    except BaseException:
        _end("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")
    finally:
        if main_thread:
            _Interrupt.restore(previous)


def end_unopened_run() -> str | None:
    """Under ``mlflow run`` the run exists before this process opens it. Interrupted before
    that (reading the data, loading a model), it is ended KILLED here, as an opened one would
    be; ``mlflow run`` would mark it FAILED (it is then in ``killed_here``). Returns the run's
    status now (RUNNING when the store did not answer), None when there is no such run."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    # `mlflow run` follows the terminal's Ctrl-C with a SIGTERM: it must not cut this short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    client = mlflow.MlflowClient()
    try:
        status = client.get_run(run_id).info.status
        if status != "RUNNING":  # it ended before the Ctrl-C
            return status
        client.set_terminated(run_id, "KILLED")
    except Exception as exc:  # the store is gone: the next run of the command marks it
        log.warning("could not mark the run KILLED in the tracking store: %s", reason(exc))
        return "RUNNING"
    killed_here.append(run_id)
    killed_status.keep_killed(run_id)
    return "KILLED"


def _end(status: str) -> None:
    """End the active run; if the store itself is what failed, say so and let the original
    error through (the next run of the same command marks this one KILLED)."""
    try:
        mlflow.end_run(status)
    except Exception as exc:  # the store is gone: MLflow's and requests' errors alike
        # MLflow has already let go of the run. A store that stopped answering is what the
        # command's last line reports; anything else is worth a line of its own.
        (log.debug if is_lost(exc) else log.warning)(
            "could not mark the run %s in the tracking store: %s", status, reason(exc))


def process_tags() -> dict[str, str]:
    me = psutil.Process()
    return {HOST: socket.gethostname(), PID: str(me.pid), PID_STARTED: f"{me.create_time():.2f}"}


def process_gone(run) -> bool | None:
    """True when the run's process has ended; None when that cannot be told from here (another
    host, or a run logged without process tags)."""
    tags = run.data.tags
    if PID not in tags or tags.get(HOST) != socket.gethostname():
        return None
    try:
        proc = psutil.Process(int(tags[PID]))
        return f"{proc.create_time():.2f}" != tags.get(PID_STARTED)  # the pid was reused
    except psutil.NoSuchProcess:
        return True


def end_if_gone(run, reason: str) -> bool:
    """Mark a RUNNING run whose process is gone KILLED, saying why; True if it did."""
    if run.info.status != "RUNNING" or not process_gone(run):
        return False
    client = mlflow.MlflowClient()
    client.set_tag(run.info.run_id, ENDED_BY, reason)
    client.set_terminated(run.info.run_id, "KILLED")
    return True


def cleanup(experiment: str) -> list[str]:
    """End every RUNNING run of ``experiment`` whose process is gone; one line per run."""
    from xraytrack.errors import XrayTrackError

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise XrayTrackError(f"no experiment named {experiment!r}")
    running = mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'",
                                 output_format="list")
    lines = []
    for run in running:
        tags, rid = run.data.tags, run.info.run_id
        where = f"pid {tags.get(PID, '?')} on {tags.get(HOST, '?')}"
        if end_if_gone(run, "its process ended without closing it; found by xraytrack runs cleanup"):
            lines.append(f"marked KILLED: run {rid} ({where}: process gone)")
        elif process_gone(run) is None:
            lines.append(f"left RUNNING: run {rid} (no process recorded on this host; "
                         "check it where it was started)")
        else:
            lines.append(f"left RUNNING: run {rid} ({where} is still running)")
    return lines or [f"no RUNNING run in experiment {experiment!r}"]


def latest_finished(experiment_id: str, tags: dict[str, str], params: dict | None = None):
    """The most recent FINISHED run with these tags (and params), or None: how a comparison,
    a repeat or an external evaluation finds work already done, so a re-run reuses it."""
    terms = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    terms += [f"params.`{k}` = '{v}'" for k, v in (params or {}).items()]
    found = mlflow.search_runs([experiment_id], " AND ".join([*terms, "attributes.status = 'FINISHED'"]),
                               order_by=["attributes.end_time DESC"], output_format="list",
                               max_results=1)
    return found[0] if found else None


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
