"""Scale benchmark cases: the shared tracking server against the embedded store, and a tune
spread over one worker against two.

    python bench/scale.py CASE [REPS]   prints one JSON object per row

Run through ``bench/run.py`` (``--only scale`` for this section alone). Needs a PostgreSQL role
that may create databases as XRAYTRACK_POSTGRES_URI (``deploy/local-postgres.sh`` prints one):
each case starts ``deploy/tracking-server.sh`` on a fresh database, as tests/test_tracking_server.py
does. Every timed command is a separate ``xraytrack`` process on the real data, as a user runs it,
so the times include starting Python and TensorFlow; the two sides alternate, rep by rep.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))
from cases import DATA, emit  # noqa: E402
from servers import SharedServer, free_port, postgres_database, venv_env  # noqa: E402

CONFIG = str(BENCH.parent / "experiments" / "simple_cnn.yaml")
SHORT = ["--data-dir", DATA, "--limit-per-class", "150", "--img-size", "64", "--epochs", "2"]


def _xraytrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "xraytrack", *args]


def _timed(jobs: list[tuple[list[str], dict]]) -> float:
    """Seconds until every one of ``jobs`` (command, environment) started together has ended."""
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=venv_env(**env), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for cmd, env in jobs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{proc.args} failed:\n{err[-3000:]}")
    return time.perf_counter() - start


def _server(work: Path):
    """The shared server on a fresh database, inside a context: (SharedServer, stack)."""
    from contextlib import ExitStack

    stack = ExitStack()
    try:
        database = stack.enter_context(postgres_database(os.environ["XRAYTRACK_POSTGRES_URI"]))
        server = SharedServer(database, work)
        server.start()
        stack.callback(server.stop)
        server.add_users()
    except BaseException:
        stack.close()  # stop what started and drop the database
        raise
    return server, stack


def overhead(reps: str = "3") -> None:
    """The same short training logged to a local SQLite file and to the shared server."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, stack = _server(work)
        with stack:
            stores = {"embedded SQLite (sqlite:///mlflow.db)": {
                          "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"},
                      "shared server (PostgreSQL, proxied artifacts, basic auth)":
                          server.client_env("trainer")}
            cache = {"XRAYTRACK_CACHE_DIR": str(work / "cache")}
            train = _xraytrack("train", "--config", CONFIG, *SHORT, "--audit", "false")
            _timed([(train + ["--experiment", "warm-up"], stores[next(iter(stores))] | cache)])
            times: dict[str, list[float]] = {name: [] for name in stores}
            for rep in range(int(reps)):
                for name, env in stores.items():
                    cmd = train + ["--experiment", f"overhead-{rep}"]
                    times[name].append(_timed([(cmd, env | cache)]))
    for name, seconds in times.items():
        emit(case=f"train: {name}", median_s=float(np.median(seconds)),
             min_s=min(seconds), max_s=max(seconds), reps=len(seconds))


def tune(reps: str = "1") -> None:
    """A 3-trial random search: a chief and one worker, then a chief and two workers."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, stack = _server(work)
        with stack:
            env = server.client_env("trainer") | {"XRAYTRACK_CACHE_DIR": str(work / "cache")}
            search = _xraytrack("tune", "--config", CONFIG, *SHORT, "--tuner", "random",
                                "--max-trials", "3")
            _timed([(_xraytrack("train", "--config", CONFIG, *SHORT, "--audit", "false",
                                "--experiment", "warm-up"), env)])  # fills the image cache
            times: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(int(reps)):
                for workers in times:
                    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1",
                              "KERASTUNER_ORACLE_PORT": str(free_port())}
                    ids = ["chief"] + [f"tuner{i}" for i in range(workers)]
                    cmd = search + ["--experiment", f"tune-{workers}w-{rep}"]
                    times[workers].append(_timed([
                        (cmd, env | oracle | {"KERASTUNER_TUNER_ID": i}) for i in ids]))
    for workers, seconds in times.items():
        emit(case=f"tune 3 trials: chief + {workers} worker{'s' if workers > 1 else ''}",
             median_s=float(np.median(seconds)), min_s=min(seconds), max_s=max(seconds),
             reps=len(seconds))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
