"""The CLI for arguments that arrive still shell-quoted: ``python -m xraytrack.quoted_cli train ...``.

MLflow's Kubernetes backend (``mlflow run kubernetes --backend kubernetes``) turns an entry point's
command into the container's exec-form ``command`` by splitting it and then shell-quoting every
piece (``mlflow.projects.kubernetes._get_run_command``). No shell runs in the container to remove
those quotes, so an empty parameter reaches the program as the two characters ``''`` and a path
with a space as ``'/data/my scans'``. Joining the arguments back into one line and splitting it the
way a shell would undoes exactly that quoting; ``kubernetes/MLproject`` calls this module for it.
"""

import shlex
import sys

from xraytrack.cli import main as cli


def unquote(argv: list[str]) -> list[str]:
    """The arguments as a shell would have passed them: ``["--seeds", "''"]`` -> ``["--seeds", ""]``."""
    return shlex.split(" ".join(argv))


def main() -> None:
    cli(args=unquote(sys.argv[1:]), prog_name="xraytrack")


if __name__ == "__main__":
    main()
