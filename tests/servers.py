"""Start MLflow's own servers on 127.0.0.1 for tests, and always stop them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_env(**extra) -> dict:
    """The environment with this interpreter's bin first, as an activated venv would have it."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return os.environ | {"PATH": path} | extra


@contextmanager
def mlflow_server(args: list[str], health: str, timeout: float = 180, log_dir: Path | None = None,
                  port: int | None = None):
    """Run ``python -m mlflow <args>`` until ``health`` answers 200; yield its base URL."""
    port = port or free_port()
    log = open((log_dir or Path.cwd()) / f"server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", *args, "--port", str(port)],
                            env=venv_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + health, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(Path(log.name).read_text()[-2000:]) from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def server_processes(port: int) -> list:
    """The processes (psutil) of the server listening on ``port``: its whole process group,
    since ``mlflow models serve`` answers from a worker child."""
    import psutil

    listener = next(c.pid for c in psutil.net_connections("tcp")
                    if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN)
    group = os.getpgid(listener)
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group:
                found.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue  # a process that ended while we looked
    return found

