"""Time to target (issue 13, item 5): how long a fine-tuning recipe takes, from the command to
its test score, and whether that score reaches the target. Writes its section of
docs/benchmarks.md.

    python bench/time_to_target.py --store sqlite:///path/mlflow.db \\
        --recipe "README recipe=RUN_ID" --recipe "plateau=RUN_ID@sqlite:///other.db" \\
        [--target 0.95]

Each RUN_ID is the parent run of a ``-P seeds=1,2,3`` command, or a single training run (read as
its one seed: the README's own command), in ``--store`` or in the store named after an ``@``.
Nothing is trained here: a
full-data recipe takes hours on this machine, so the numbers come from the runs the recipe
commands logged. A seed's wall time is the sum over its run and the interrupted runs it resumed
(``xraytrack.resumed_from``), so stopping and resuming does not hide time. Epochs are the
machine-independent count; minutes depend on what else shared the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from xraytrack.tracking.store import redact, redact_text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from report import splice, table  # noqa: E402

TITLE = "## 7. Time to target: fine-tuning recipes"
METRIC = "test_macro_f1"


def seed_rows(client: mlflow.MlflowClient, recipe: str, run_id: str, target: float) -> list[dict]:
    """One row per seed of the repeats parent ``run_id``, or one row if it is a single training
    run: a user's one run of the README's command is as much a measure as a seed of a repeat."""
    run = client.get_run(run_id)
    if "child_runs.json" not in {a.path for a in client.list_artifacts(run_id)}:
        return [_seed_row(client, recipe, run.data.params.get("cfg.seed", "?"), run_id, target)]
    with tempfile.TemporaryDirectory() as tmp:  # through the client: no global tracking URI set
        children = json.loads(Path(client.download_artifacts(run_id, "child_runs.json", tmp)).read_text())
    return [_seed_row(client, recipe, seed, child, target)
            for seed, child in sorted(children.items(), key=lambda item: int(item[0]))]


def _seed_row(client, recipe: str, seed: str, run_id: str, target: float) -> dict:
    run = client.get_run(run_id)
    chain = _resume_chain(client, run)
    score = run.data.metrics[METRIC]
    minutes = sum((r.info.end_time - r.info.start_time) for r in chain) / 60_000
    epochs = len(client.get_metric_history(run_id, "val_loss"))
    return {
        "recipe": recipe, "seed": seed, "run": run_id[:8],
        "interrupted_runs": len(chain) - 1,
        "epochs": epochs,
        "wall_min": f"{minutes:.1f}",  # strings: the table would round 0.9465 to "0.95"
        # shows which runs shared the cores: the same recipe alone takes the same per epoch
        "min_per_epoch": f"{minutes / max(epochs, 1):.2f}",
        METRIC: f"{score:.4f}",
        "reached": score >= target,
    }


def _resume_chain(client, run) -> list:
    """``run`` and every interrupted run it continued, newest first."""
    chain = [run]
    while previous := chain[-1].data.tags.get("xraytrack.resumed_from"):
        chain.append(client.get_run(previous))
    return chain


def summary_line(recipe: str, rows: list[dict], target: float) -> str:
    scores = [float(r[METRIC]) for r in rows]
    minutes = [float(r["wall_min"]) for r in rows]
    reached = [r for r in rows if r["reached"]]
    spread = f"{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}" if len(rows) > 1 \
        else f"{scores[0]:.3f}"
    when = (f"{len(reached)} of {len(rows)} reach {target}, the quickest of them took "
            f"{min(float(r['wall_min']) for r in reached):.0f} min" if reached
            else f"no seed reaches {target}")
    seeds = f"{len(rows)} seeds" if len(rows) > 1 else "1 seed"
    return (f"- **{recipe}**: test macro-F1 {spread} over {seeds}; {when}; "
            f"{statistics.mean(minutes):.0f} min and "
            f"{statistics.mean(r['epochs'] for r in rows):.1f} epochs a seed on average.")


def section(rows: list[dict], recipes: dict[str, str], target: float, command: str) -> str:
    columns = ["recipe", "seed", "run", "epochs", "wall_min", "min_per_epoch", "interrupted_runs",
               METRIC, "reached"]
    return "\n".join([
        TITLE, "",
        f"Made by `{command}` ({date.today()}) from the runs that the recipes' commands logged "
        "(docs/results.md gives the commands); runs (a repeats parent or a single run): "
        + ", ".join(f"{name} `{parent[:8]}`" for name, parent in recipes.items()) + ". "
        "Wall time is the whole training run, evaluation included, summed over any interrupted "
        "run it resumed (and the shortcut audit where the run made one); other work often shared "
        "the two cores, so minutes are upper bounds, `min_per_epoch` shows which runs shared, and "
        "epochs are the fairer comparison.", "",
        table(rows, columns), "",
        *(summary_line(name, [r for r in rows if r["recipe"] == name], target)
          for name in recipes),
    ])


def recipe_source(item: str, default_store: str) -> tuple[str, str, str]:
    """``NAME=RUN_ID[@STORE]`` -> (name, run id, store): recipes measured in different
    sessions often live in different stores. The run id has no ``@``, a store URI may."""
    name, _, parent = item.partition("=")
    parent, _, store = parent.partition("@")
    return name, parent, store or default_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="the tracking URI that holds the runs")
    parser.add_argument("--recipe", action="append", required=True, metavar="NAME=RUN_ID[@STORE]")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    recipes, rows = {}, []
    for item in args.recipe:
        name, parent, store = recipe_source(item, args.store)
        recipes[name] = parent
        try:
            rows += seed_rows(mlflow.MlflowClient(store), name, parent, args.target)
        except MlflowException as error:  # a mistyped or shortened id: say which, no traceback
            sys.exit(f"time_to_target: recipe {name!r}: {error.message} in {redact(store)}")
    command = "python bench/time_to_target.py " + " ".join(  # stores without their passwords
        [f"--store {redact(args.store)}"] + [f"--recipe '{redact_text(item)}'" for item in args.recipe]
        + [f"--target {args.target}"])
    text = section(rows, recipes, args.target, command)
    out = Path(args.out)
    out.write_text(splice(out.read_text(), TITLE, text))
    print(text)


if __name__ == "__main__":
    main()
