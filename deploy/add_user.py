"""Add a user to the shared tracking server, as its admin, with MLflow's own auth API.

    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=... \\
        python deploy/add_user.py http://127.0.0.1:5000 alice [--read-only]

The new user's password comes from XRAYTRACK_NEW_USER_PASSWORD, or is asked for. Every user
reads everything (the server's default READ) and may create experiments and models of their own.
A user who trains (not --read-only) also gets EDIT on the Default experiment: `mlflow run`
without --experiment-name logs there, so the README's main command works for them unchanged;
anything else a user should write to is granted with ``grant_user_permission``, as below.
"""

from __future__ import annotations

import argparse
import getpass
import os

from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

DEFAULT_EXPERIMENT = "0"


def add_user(tracking_uri: str, username: str, password: str, read_only: bool) -> None:
    users = AuthServiceClient(tracking_uri)
    users.create_user(username, password)
    if not read_only:
        users.grant_user_permission(username, "experiment", DEFAULT_EXPERIMENT, "EDIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tracking_uri")
    parser.add_argument("username")
    parser.add_argument("--read-only", action="store_true", help="reads only; cannot log or register")
    args = parser.parse_args()
    password = os.environ.get("XRAYTRACK_NEW_USER_PASSWORD") or getpass.getpass(
        f"password for {args.username}: ")
    try:
        add_user(args.tracking_uri, args.username, password, args.read_only)
    except MlflowException as exc:  # a wrong admin password, a taken name: one line, no traceback
        raise SystemExit(f"Error: {exc.message.splitlines()[0]}") from None
    print(f"added {args.username} ({'read-only' if args.read_only else 'may train'}) "
          f"to {args.tracking_uri}")


if __name__ == "__main__":
    main()
