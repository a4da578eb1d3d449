"""``-P seeds=1,2,3``: the same training once per seed, under a parent that reports the spread.

Each seed is an ordinary training run (a nested child), so everything a run logs is there per
seed; the parent logs mean, sd, min and max of every test metric and ``repeats.md``/``.csv``.
The split has its own seed (``split_seed``), so the children are tested on the same images: a
difference between them is the seed's, not the test set's. A re-run reuses finished seeds.
"""

from __future__ import annotations

import dataclasses

import mlflow
import pandas as pd

from xraytrack.config import TrainConfig
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import repeats
from xraytrack.tracking import runs
from xraytrack.training import distribute
from xraytrack.training.train import resolve, run_training

SUMMARISED = ("test_", "restored_val_", "temperature")


def repeats_key(cfg: TrainConfig) -> str:
    """Identifies the repeated command (any seed), so a re-run finds the seeds already done."""
    return dataclasses.replace(cfg, seed=0).resume_key(role="repeats")


def finished_seed(experiment_id: str, key: str, seed: int) -> mlflow.entities.Run | None:
    return runs.latest_finished(experiment_id, {"xraytrack.repeats_key": key,
                                                "xraytrack.seed": str(seed)})


def check_seeds(seeds) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in seeds)
    except ValueError:
        raise XrayTrackError(f"--seeds takes whole numbers, e.g. 1,2,3; got {','.join(seeds)}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise XrayTrackError(f"--seeds needs two or more different seeds, got {seeds}")
    return seeds


def run_repeats(cfg: TrainConfig, seeds) -> str:
    """Returns the parent run id."""
    distribute.single_host("--seeds")
    seeds = check_seeds(seeds)
    cfg, _ = resolve(cfg)
    key = repeats_key(cfg)
    name = cfg.run_name or f"{cfg.architecture}-seeds-{'-'.join(map(str, seeds))}"
    with runs.tracked_run(cfg.experiment, name) as parent:
        mlflow.log_params({k: v for k, v in cfg.params().items() if k != "cfg.seed"}
                          | {"repeats.seeds": ",".join(map(str, seeds))})
        mlflow.set_tags({"xraytrack.repeats_key": key, "xraytrack.role": "repeats"})
        children = {seed: _child(cfg, seed, key, parent.info.experiment_id) for seed in seeds}
        _log_summary(cfg, children)
        return parent.info.run_id


def _child(cfg: TrainConfig, seed: int, key: str, experiment_id: str) -> mlflow.entities.Run:
    done = finished_seed(experiment_id, key, seed)
    if done:
        print(f"Seed {seed}: reusing finished run {done.info.run_id}")
        return done
    print(f"Seed {seed}: training")
    run_id = run_training(dataclasses.replace(cfg, seed=seed, run_name=f"seed-{seed}"), nested=True,
                          tags={"xraytrack.repeats_key": key, "xraytrack.seed": str(seed)})
    return mlflow.get_run(run_id)


def _log_summary(cfg: TrainConfig, children: dict[int, mlflow.entities.Run]) -> None:
    digests = {r.data.params.get("data.split_digest") for r in children.values()}
    if len(digests) != 1:
        raise XrayTrackError(f"the seeds were tested on different splits ({len(digests)} digests); "
                             "the split must not depend on the seed")
    per_seed = pd.DataFrame({seed: {k: v for k, v in run.data.metrics.items()
                                    if k.startswith(SUMMARISED)}
                             for seed, run in children.items()}).T.rename_axis("seed")
    summary = repeats.summarize(per_seed)
    mlflow.log_metrics(repeats.as_metrics(summary))
    mlflow.log_param("data.split_digest", digests.pop())
    mlflow.log_dict({str(s): r.info.run_id for s, r in children.items()}, "child_runs.json")
    mlflow.log_text(per_seed.to_csv(), "repeats.csv")
    mlflow.log_text(summary.to_csv(), "repeats_summary.csv")
    text = (f"# {cfg.architecture}: {len(children)} seeds\n\n"
            f"The split is fixed (split_seed {cfg.split_seed}): every seed is tested on the same "
            "images, and the seeds vary only the starting weights, the augmentation draws and the "
            "training order. sd uses n - 1.\n\n" + repeats.to_markdown(per_seed, summary))
    mlflow.log_text(text, "repeats.md")
    print(text)
