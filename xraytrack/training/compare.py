"""The comparison entry point: one child run per balancing strategy, one parent that compares.

The numbers compared are the children's own test predictions (``predictions.csv``), scored by
``evaluation.metrics.scores`` as the children were; this module only orchestrates the runs.
"""

from __future__ import annotations

import dataclasses

import mlflow

from xraytrack.config import TrainConfig
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import comparison, metrics, plots
from xraytrack.evaluation.predictions import read_predictions
from xraytrack.evaluation.test_split import log_figure
from xraytrack.tracking import runs
from xraytrack.training import balancing
from xraytrack.training.train import resolve, run_training


def compare_key(cfg: TrainConfig) -> str:
    """Identifies the comparison (any strategy), so a re-run can reuse finished strategies."""
    return dataclasses.replace(cfg, balance="none").resume_key(role="compare")


def finished_child(experiment_id: str, key: str, strategy: str) -> str | None:
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=(f"tags.`xraytrack.compare_key` = '{key}' AND "
                       f"tags.`xraytrack.strategy` = '{strategy}' AND attributes.status = 'FINISHED'"),
        order_by=["attributes.end_time DESC"], output_format="list", max_results=1,
    )
    return runs[0].info.run_id if runs else None


def run_comparison(cfg: TrainConfig, strategies, select_metric: str = "macro_f1",
                   n_boot: int = 1000) -> str:
    cfg, _ = resolve(cfg)
    strategies = balancing.check_strategies(strategies)
    known = metrics.score_names(cfg.classes)
    if select_metric not in known:
        raise XrayTrackError(f"unknown metric {select_metric!r}; choose one of {', '.join(sorted(known))}")
    key = compare_key(cfg)
    with runs.tracked_run(cfg.experiment, cfg.run_name or f"compare-{cfg.architecture}") as parent:
        mlflow.log_params(cfg.params() | {"compare.strategies": ",".join(strategies),
                                          "compare.select_metric": select_metric,
                                          "compare.n_boot": n_boot})
        mlflow.set_tags({"xraytrack.compare_key": key, "xraytrack.role": "comparison"})
        runs.log_system_info()
        predictions, children, paths = {}, {}, None
        for strategy in strategies:
            child = finished_child(parent.info.experiment_id, key, strategy)
            if child:
                print(f"Strategy {strategy}: reusing finished run {child}")
            else:
                print(f"Strategy {strategy}: training")
                child = run_training(
                    dataclasses.replace(cfg, balance=strategy, run_name=strategy), nested=True,
                    tags={"xraytrack.compare_key": key, "xraytrack.strategy": strategy})
            tested = read_predictions(child, cfg.classes)
            if paths is not None and tested.paths != paths:
                raise XrayTrackError(f"strategy {strategy} was tested on a different split")
            paths, children[strategy] = tested.paths, child
            predictions[strategy] = (tested.y_true, tested.probs)
        table = comparison.compare(predictions, cfg.classes, n_boot=n_boot, seed=cfg.seed)
        best = table[select_metric].idxmax()
        mlflow.log_text(table.to_csv(), "comparison.csv")
        mlflow.log_text(comparison.to_markdown(table) + "\n" +
                        comparison.summary(table, cfg.classes), "comparison.md")
        mlflow.log_dict(children, "child_runs.json")
        log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "roc"), "roc_by_strategy.png")
        log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "pr"), "pr_by_strategy.png")
        log_figure(plots.interval_bars_figure(table, select_metric), f"{select_metric}_by_strategy.png")
        mlflow.set_tag("xraytrack.best_strategy", best)
        mlflow.log_param("compare.best_strategy", best)
        mlflow.log_metrics({f"best_{select_metric}": table.at[best, select_metric]} |
                           {f"{s}_{select_metric}": table.at[s, select_metric] for s in strategies})
        print(comparison.to_markdown(table))
        print(f"Best strategy by {select_metric}: {best}")
        return parent.info.run_id
