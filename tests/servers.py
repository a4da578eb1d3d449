"""Start MLflow's own servers on 127.0.0.1 for tests, and always stop them."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
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
                  port: int | None = None, env: dict | None = None):
    """Run ``python -m mlflow <args>`` until ``health`` answers 200; yield its base URL."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlflow", *args, "--port", str(port)]
    with running_server(cmd, port, health, timeout, log_dir, env) as base:
        yield base


@contextmanager
def running_server(cmd: list[str], port: int, health: str, timeout: float = 180,
                   log_dir: Path | None = None, env: dict | None = None):
    """Run ``cmd`` (a server on ``port``) in a process group of its own until ``health`` answers
    200; yield its base URL, then stop the whole group."""
    log = open((log_dir or Path.cwd()) / f"server-{port}.log", "a")
    proc = subprocess.Popen(cmd, env=venv_env(**(env or {})), stdout=log, stderr=subprocess.STDOUT,
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


def connect(uri: str):
    """A psycopg connection (autocommit) from a SQLAlchemy ``postgresql+psycopg://`` URI."""
    import psycopg

    return psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@contextmanager
def postgres_database(admin_uri: str):
    """A fresh database on the server of ``admin_uri`` (a role that may create databases); yield
    its URI, then drop it."""
    name = f"xraytrack_test_{secrets.token_hex(4)}"
    with connect(admin_uri) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_uri.rsplit("/", 1)[0] + "/" + name
    finally:
        with connect(admin_uri) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


class SharedServer:
    """deploy/tracking-server.sh on one port with users admin, trainer (writes) and viewer (the
    default READ); it can be stopped and started again on the same store."""

    USERS = ("admin", "trainer", "viewer")

    def __init__(self, database: str, root: Path):
        self.database, self.artifacts, self.root = database, root / "artifacts", root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.passwords = {user: secrets.token_urlsafe(16) for user in self.USERS}
        self._env = {"XRAYTRACK_BACKEND_STORE_URI": database,
                     "XRAYTRACK_ARTIFACTS_DESTINATION": str(self.artifacts),
                     "MLFLOW_AUTH_ADMIN_PASSWORD": self.passwords["admin"],
                     "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
                     "XRAYTRACK_PORT": str(self.port), "XRAYTRACK_WORKERS": "1"}
        self._stack: ExitStack | None = None

    def start(self) -> None:
        self._stack = ExitStack()
        self._stack.enter_context(running_server(
            ["bash", str(DEPLOY / "tracking-server.sh")], self.port, "/health", timeout=240,
            log_dir=self.root, env=self._env))

    def stop(self) -> None:
        self._stack.close()

    def add_users(self) -> None:
        """trainer (may train) and viewer (--read-only), added by deploy/add_user.py as admin."""
        admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": self.passwords["admin"]}
        for user, flags in (("trainer", []), ("viewer", ["--read-only"])):
            done = subprocess.run(
                [sys.executable, str(DEPLOY / "add_user.py"), self.base, user, *flags],
                env=venv_env(**admin, XRAYTRACK_NEW_USER_PASSWORD=self.passwords[user]),
                capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"add_user.py {user}: {done.stderr[-2000:]}")

    def client_env(self, user: str) -> dict:
        """What a user's shell has: the server's URL and the user's credentials, nothing else."""
        return {"MLFLOW_TRACKING_URI": self.base, "MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": self.passwords[user]}

    def client(self, user: str, monkeypatch):
        """An MlflowClient acting as ``user`` for the rest of the test."""
        import mlflow

        for key, value in self.client_env(user).items():
            monkeypatch.setenv(key, value)
        return mlflow.MlflowClient(self.base)
