"""The comparison entry point: one child run per balancing strategy, one parent that compares."""

from __future__ import annotations

import dataclasses
import io

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from xraytrack import balancing, comparison, plots, tracking
from xraytrack.config import TrainConfig
from xraytrack.errors import XrayTrackError
from xraytrack.train import resolve, run_training


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


def load_predictions(run_id: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list]:
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/predictions.csv")
    frame = pd.read_csv(io.StringIO(text))
    y = frame["true"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return y, frame[list(classes)].to_numpy(), frame["path"].tolist()


def _log_figure(fig, name: str) -> None:
    mlflow.log_figure(fig, name)
    plt.close(fig)


def run_comparison(cfg: TrainConfig, strategies, select_metric: str = "macro_f1",
                   n_boot: int = 1000) -> str:
    cfg, _ = resolve(cfg)
    strategies = balancing.check_strategies(strategies)
    known = comparison.metric_names(cfg.classes)
    if select_metric not in known:
        raise XrayTrackError(f"unknown metric {select_metric!r}; choose one of {', '.join(sorted(known))}")
    key = compare_key(cfg)
    with tracking.tracked_run(cfg.experiment, cfg.run_name or f"compare-{cfg.architecture}") as parent:
        mlflow.log_params(cfg.params() | {"compare.strategies": ",".join(strategies),
                                          "compare.select_metric": select_metric,
                                          "compare.n_boot": n_boot})
        mlflow.set_tags({"xraytrack.compare_key": key, "xraytrack.role": "comparison"})
        tracking.log_system_info()
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
            y, probs, child_paths = load_predictions(child, cfg.classes)
            if paths is not None and child_paths != paths:
                raise XrayTrackError(f"strategy {strategy} was tested on a different split")
            paths, predictions[strategy], children[strategy] = child_paths, (y, probs), child
        table = comparison.compare(predictions, cfg.classes, n_boot=n_boot, seed=cfg.seed)
        best = table[select_metric].idxmax()
        mlflow.log_text(table.to_csv(), "comparison.csv")
        mlflow.log_text(comparison.to_markdown(table) + "\n" +
                        comparison.summary(table, cfg.classes), "comparison.md")
        mlflow.log_dict(children, "child_runs.json")
        _log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "roc"), "roc_by_strategy.png")
        _log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "pr"), "pr_by_strategy.png")
        _log_figure(plots.interval_bars_figure(table, select_metric), f"{select_metric}_by_strategy.png")
        mlflow.set_tag("xraytrack.best_strategy", best)
        mlflow.log_param("compare.best_strategy", best)
        mlflow.log_metrics({f"best_{select_metric}": table.at[best, select_metric]} |
                           {f"{s}_{select_metric}": table.at[s, select_metric] for s in strategies})
        print(comparison.to_markdown(table))
        print(f"Best strategy by {select_metric}: {best}")
        return parent.info.run_id
