"""The comparison entry point end to end on synthetic images."""

import io

import mlflow
import pandas as pd
import pytest
from helpers import quick_config

from xraytrack.errors import XrayTrackError
from xraytrack.training import compare as compare_mod
from xraytrack.training.compare import run_comparison


def test_each_strategy_is_a_child_run_and_the_parent_compares_them(dataset):
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    parent_id = run_comparison(cfg, ["none", "oversample", "balanced_batches"], n_boot=50)
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(experiment_ids=[parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                  output_format="list")
    assert sorted(r.data.tags["xraytrack.strategy"] for r in children) == [
        "balanced_batches", "none", "oversample"]
    assert len({r.data.params["data.split_digest"] for r in children}) == 1  # one shared split
    assert all("test_macro_f1" in r.data.metrics for r in children)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id)}
    assert {"comparison.csv", "comparison.md", "roc_by_strategy.png", "pr_by_strategy.png",
            "macro_f1_by_strategy.png"} <= artifacts
    table = mlflow.artifacts.load_text(f"runs:/{parent_id}/comparison.csv")
    assert "covid_sens_at_95_spec_lo" in table and "pr_auc_normal_hi" in table
    assert parent.data.tags["xraytrack.best_strategy"] in ("none", "oversample", "balanced_batches")
    # one scoring function: the comparison's numbers are its children's own test metrics
    frame = pd.read_csv(io.StringIO(table), index_col="strategy")
    for child in children:
        strategy = child.data.tags["xraytrack.strategy"]
        for metric in ("macro_f1", "balanced_accuracy", "auc_covid", "recall_normal"):
            assert frame.at[strategy, metric] == pytest.approx(child.data.metrics[f"test_{metric}"],
                                                               abs=1e-12)


def test_a_rerun_reuses_strategies_that_already_finished(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    run_comparison(cfg, ["none"], n_boot=20)
    trained = []
    real = compare_mod.run_training
    monkeypatch.setattr(compare_mod, "run_training",
                        lambda c, **kw: trained.append(c.balance) or real(c, **kw))
    run_comparison(cfg, ["none", "undersample"], n_boot=20)
    assert trained == ["undersample"]


def test_bad_settings_are_errors_before_anything_runs(dataset):
    cfg = quick_config(dataset, epochs=1)
    with pytest.raises(XrayTrackError, match="unknown balancing strategy"):
        run_comparison(cfg, ["none", "smote"])
    with pytest.raises(XrayTrackError, match="unknown metric 'recall_lung_opacity'"):
        run_comparison(cfg, ["none"], select_metric="recall_lung_opacity")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
