"""The comparison entry point end to end on synthetic images."""

import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import quick_config

from xraytrack.errors import XrayTrackError
from xraytrack.training import compare as compare_mod
from xraytrack.training.compare import run_comparison
from xraytrack.training.repeats import run_repeats


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_rerun_reuses_strategies_that_already_finished(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    run_comparison(cfg, ["none"], n_boot=20)
    trained = []
    real = compare_mod.run_training
    monkeypatch.setattr(compare_mod, "run_training",
                        lambda c, **kw: trained.append(c.balance) or real(c, **kw))
    run_comparison(cfg, ["none", "undersample"], n_boot=20)
    assert trained == ["undersample"]


@pytest.mark.slow
def test_seeds_train_every_strategy_per_seed_and_choose_by_the_mean(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    parent_id = run_comparison(cfg, ["none", "oversample"], n_boot=20, seeds=["1", "2"])
    parent = mlflow.get_run(parent_id)
    children = mlflow.search_runs(experiment_ids=[parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                  output_format="list")
    arms = sorted((r.data.tags["xraytrack.strategy"], r.data.params["cfg.seed"]) for r in children)
    assert arms == [("none", "1"), ("none", "2"), ("oversample", "1"), ("oversample", "2")]
    assert len({r.data.params["data.split_digest"] for r in children}) == 1
    # the parent's mean and sd are its children's own test scores, strategy by strategy
    for strategy in ("none", "oversample"):
        scores = [r.data.metrics["test_macro_f1"] for r in children
                  if r.data.tags["xraytrack.strategy"] == strategy]
        assert parent.data.metrics[f"{strategy}_macro_f1_mean"] == pytest.approx(np.mean(scores))
        assert parent.data.metrics[f"{strategy}_macro_f1_sd"] == pytest.approx(np.std(scores, ddof=1))
    means = {s: parent.data.metrics[f"{s}_macro_f1_mean"] for s in ("none", "oversample")}
    assert parent.data.tags["xraytrack.best_strategy"] == max(means, key=means.get)
    assert parent.data.metrics["best_macro_f1"] == pytest.approx(max(means.values()))
    assert "± " in mlflow.artifacts.load_text(f"runs:/{parent_id}/comparison_seeds.md")

    trained = []
    real = compare_mod.run_training
    monkeypatch.setattr(compare_mod, "run_training",
                        lambda c, **kw: trained.append((c.balance, c.seed)) or real(c, **kw))
    run_comparison(cfg, ["none", "oversample"], n_boot=20, seeds=["1", "2", "3"])
    assert trained == [("none", 3), ("oversample", 3)]  # finished seeds are reused


@pytest.mark.slow
def test_an_arm_reuses_the_seeds_a_repeat_already_trained_with_its_settings(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    repeat = mlflow.get_run(run_repeats(cfg, ["1", "2"]))
    repeated = {r.data.tags["xraytrack.seed"]: r.info.run_id for r in mlflow.search_runs(
        [repeat.info.experiment_id], f"tags.mlflow.parentRunId = '{repeat.info.run_id}'",
        output_format="list")}
    trained = []
    real = compare_mod.run_training
    monkeypatch.setattr(compare_mod, "run_training",
                        lambda c, **kw: trained.append((c.balance, c.seed)) or real(c, **kw))
    parent_id = run_comparison(cfg, ["none", "oversample"], n_boot=20, seeds=["1", "2", "3"])
    # another seed or another setting is a different training: only the repeat's own are reused
    assert trained == [("none", 3), ("oversample", 1), ("oversample", 2), ("oversample", 3)]
    children = mlflow.artifacts.load_dict(f"runs:/{parent_id}/child_runs.json")
    assert children["none seed 1"] == repeated["1"] and children["none seed 2"] == repeated["2"]


def test_bad_settings_are_errors_before_anything_runs(dataset):
    cfg = quick_config(dataset, epochs=1)
    with pytest.raises(XrayTrackError, match="unknown balancing strategy"):
        run_comparison(cfg, ["none", "smote"])
    with pytest.raises(XrayTrackError, match="unknown metric 'recall_lung_opacity'"):
        run_comparison(cfg, ["none"], select_metric="recall_lung_opacity")
    with pytest.raises(XrayTrackError, match="two or more different seeds"):
        run_comparison(cfg, ["none"], seeds=["1", "1"])
    from conftest import make_dataset

    from xraytrack.training.compare import ExternalSet

    elsewhere = make_dataset(dataset.parent / "hospital", n_per_class=2, classes=("covid",),
                             extras=False)
    with pytest.raises(XrayTrackError, match=r"none of this set's labels \(covid\)"):
        run_comparison(cfg, ["none"], external=ExternalSet(str(elsewhere)))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_an_external_set_is_scored_per_strategy_beside_the_internal_one(dataset, tmp_path,
                                                                       monkeypatch):
    from conftest import make_dataset

    from xraytrack.training.compare import ExternalSet

    site = make_dataset(tmp_path / "hospital", n_per_class=8, classes=("COVID", "Normal"),
                        extras=False, seed=5)
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    parent_id = run_comparison(cfg, ["none", "oversample"], n_boot=20,
                               external=ExternalSet(str(site), "hospital"))
    parent = mlflow.get_run(parent_id)
    kids = mlflow.search_runs(experiment_ids=[parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              output_format="list")
    trained = {r.data.tags["xraytrack.strategy"]: r for r in kids
               if r.data.tags.get("xraytrack.role") != "evaluation"}
    evaluated = {r.data.tags["xraytrack.strategy"]: r for r in kids
                 if r.data.tags.get("xraytrack.role") == "evaluation"}
    assert sorted(evaluated) == sorted(trained) == ["none", "oversample"]
    external = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(
        f"runs:/{parent_id}/comparison_external.csv")), index_col="strategy")
    for strategy, run in evaluated.items():
        assert run.data.tags["xraytrack.source_run"] == trained[strategy].info.run_id
        assert run.data.tags["xraytrack.site"] == "hospital"
        auc = run.data.metrics["auc_covid"]
        assert external.at[strategy, "auc_covid"] == pytest.approx(auc)
        assert external.at[strategy, "auc_covid_lo"] <= auc <= external.at[strategy, "auc_covid_hi"]
        assert parent.data.metrics[f"{strategy}_hospital_auc_covid"] == pytest.approx(auc)
    page = mlflow.artifacts.load_text(f"runs:/{parent_id}/comparison_external.md")
    assert "internal macro_f1" in page and "hospital auc_covid" in page
    assert "| oversample |" in page
    # a re-run reuses every training and every evaluation
    calls = []
    monkeypatch.setattr(compare_mod, "evaluate_site", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(compare_mod, "run_training", lambda *a, **k: calls.append(a))
    run_comparison(cfg, ["none", "oversample"], n_boot=20,
                   external=ExternalSet(str(site), "hospital"))
    assert calls == []
    # one strategy alone has no arm to pair with the baseline: no paired table, none named
    alone = run_comparison(cfg, ["none"], n_boot=20, external=ExternalSet(str(site), "hospital"))
    assert calls == []
    logged = {a.path for a in mlflow.artifacts.list_artifacts(run_id=alone)}
    assert "comparison_external.md" in logged and "tradeoff.md" in logged
    assert not logged & {"comparison_paired.md", "comparison_paired.csv"}
    said = mlflow.artifacts.load_text(f"runs:/{alone}/tradeoff.md")
    assert "comparison_paired" not in said and "One arm, so nothing to trade off" in said
    assert "xraytrack.best_tradeoff_strategy" not in mlflow.get_run(alone).data.tags


def test_a_missing_external_set_fails_before_training(dataset, tmp_path):
    from xraytrack.training.compare import ExternalSet

    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"))
    with pytest.raises(XrayTrackError):
        run_comparison(cfg, ["none"], external=ExternalSet(str(tmp_path / "nowhere")))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_any_setting_can_vary_and_preprocessing_arms_are_scored_inside_and_outside(
        dataset, tmp_path, monkeypatch):
    from conftest import make_dataset

    from xraytrack.training.compare import ExternalSet

    site = make_dataset(tmp_path / "hospital", n_per_class=8, classes=("COVID", "Normal"),
                        extras=False, seed=5)
    cfg = quick_config(dataset, epochs=1, classes=("COVID", "Normal"), audit=True)
    run_comparison(cfg, ["none"], n_boot=20)  # a balancing comparison: its `none` is not reused
    trained = []
    real = compare_mod.run_training
    monkeypatch.setattr(compare_mod, "run_training",
                        lambda c, **kw: trained.append((c.balance, c.preprocess)) or real(c, **kw))
    parent_id = run_comparison(cfg, ["none", "equalize+border_crop=0.7"], n_boot=20,
                               vary="preprocess", external=ExternalSet(str(site), "hospital"),
                               external_metric="auc_covid", tolerance=0.02)
    assert trained == [("none", "none"), ("none", "border_crop=0.7+equalize")]
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["compare.vary"] == "preprocess"
    assert parent.data.params["compare.strategies"] == "none,border_crop=0.7+equalize"
    kids = mlflow.search_runs(experiment_ids=[parent.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              output_format="list")
    arms = {r.data.tags["xraytrack.strategy"]: r for r in kids
            if r.data.tags.get("xraytrack.role") != "evaluation"}
    assert {s: r.data.params["cfg.preprocess"] for s, r in arms.items()} == {
        "none": "none", "border_crop=0.7+equalize": "border_crop=0.7+equalize"}
    assert {r.data.tags["xraytrack.vary"] for r in arms.values()} == {"preprocess"}
    assert {r.data.params["cfg.balance"] for r in arms.values()} == {"none"}
    # MLflow metric names cannot hold '+' or '=': each arm's metrics are under a sanitised name
    metrics = parent.data.metrics
    assert metrics["border_crop_0_7_equalize_macro_f1"] == pytest.approx(
        arms["border_crop=0.7+equalize"].data.metrics["test_macro_f1"])
    assert "border_crop_0_7_equalize_hospital_auc_covid" in metrics
    # the named arm is the one with the best external AUC among those kept inside
    external = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(
        f"runs:/{parent_id}/comparison_external.csv")), index_col="strategy")
    inside = {s: r.data.metrics["test_macro_f1"] for s, r in arms.items()}
    kept = [s for s in inside if inside[s] >= inside["none"] - 0.02]
    assert parent.data.tags["xraytrack.best_tradeoff_strategy"] == max(
        kept, key=lambda s: external.at[s, "auc_covid"])
    assert "highest external auc_covid" in mlflow.artifacts.load_text(
        f"runs:/{parent_id}/tradeoff.md")
    # read back from the evaluations' predictions, the paired difference is that of their AUCs
    gains = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(
        f"runs:/{parent_id}/comparison_paired.csv")), index_col=0)
    arm = "border_crop=0.7+equalize"
    assert list(gains.index) == [arm]
    assert gains.at[arm, "difference"] == pytest.approx(
        external.at[arm, "auc_covid"] - external.at["none", "auc_covid"])
    assert gains.at[arm, "lo"] <= gains.at[arm, "difference"] <= gains.at[arm, "hi"]
    assert metrics["border_crop_0_7_equalize_hospital_auc_covid_diff"] == pytest.approx(
        gains.at[arm, "difference"])
    audits = mlflow.artifacts.load_text(f"runs:/{parent_id}/comparison_audit.md")
    removed = arms["none"].data.metrics  # each arm's audit, with its interval
    assert (f"| none | {removed['audit_plain_balanced_accuracy']:.3f} | "
            f"{removed['audit_lungs_removed_balanced_accuracy']:.3f} "
            f"[{removed['audit_lungs_removed_balanced_accuracy_lo']:.3f}, ") in audits


def test_a_bad_value_of_the_varied_setting_fails_before_training(dataset):
    from xraytrack.training.compare import ExternalSet

    cfg = quick_config(dataset, epochs=1)
    with pytest.raises(XrayTrackError, match="unknown preprocessing 'blur'"):
        run_comparison(cfg, ["none", "blur"], vary="preprocess")
    with pytest.raises(XrayTrackError, match="cannot vary 'data_dir'"):
        run_comparison(cfg, ["a", "b"], vary="data_dir")
    with pytest.raises(XrayTrackError, match="img_size=big: not a valid value"):
        run_comparison(cfg, ["32", "big"], vary="img_size")
    with pytest.raises(XrayTrackError, match="unknown external metric 'auc_covd'"):
        run_comparison(cfg, ["none"], external=ExternalSet(str(dataset)), external_metric="auc_covd")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_with_seeds_the_tradeoff_reads_each_arms_means_and_seed_ranges():
    table = pd.DataFrame({"macro_f1": [0.90, 0.92, 0.89, 0.91]},
                         index=["none seed 1", "none seed 2", "crop seed 1", "crop seed 2"])
    external = pd.DataFrame({"auc_covid": [0.50, 0.60, 0.80, 0.90]}, index=table.index)
    with mlflow.start_run() as run:
        compare_mod._log_tradeoff(table, external, ("none", "crop"), (1, 2), "macro_f1",
                                  "auc_covid", 0.02, "hospital")
    logged = mlflow.get_run(run.info.run_id)
    assert logged.data.tags["xraytrack.best_tradeoff_strategy"] == "crop"
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/tradeoff.md")
    assert "`crop`: 0.850 [0.800, 0.900] vs `none` 0.550 [0.500, 0.600]" in text
    assert "the ranges over seeds do not overlap" in text


def test_the_tradeoff_gives_the_paired_reading_of_the_best_arm_outside_even_when_not_kept():
    table = pd.DataFrame({"macro_f1": [0.95, 0.96, 0.93, 0.93]},
                         index=["none seed 1", "none seed 2", "crop seed 1", "crop seed 2"])
    external = pd.DataFrame({"auc_covid": [0.50, 0.56, 0.70, 0.80]}, index=table.index)
    gains = pd.DataFrame({"difference": [0.22], "lo": [0.10], "hi": [0.34], "better_share": [1.0]},
                         index=["crop"])
    with mlflow.start_run() as run:
        compare_mod._log_tradeoff(table, external, ("none", "crop"), (1, 2), "macro_f1",
                                  "auc_covid", 0.02, "hospital", gains)
    assert mlflow.get_run(run.info.run_id).data.tags["xraytrack.best_tradeoff_strategy"] == "none"
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/tradeoff.md")
    assert "`crop`'s, 0.750 [0.700, 0.800], at an internal cost of 0.025" in text
    assert "`crop` minus `none` in auc_covid is +0.220 [+0.100, +0.340]" in text
