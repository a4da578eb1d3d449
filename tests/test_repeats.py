"""`--seeds`: one child run per seed on the same split, a parent with the spread."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import quick_config

from xraytrack.cli import main
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import repeats
from xraytrack.tracking.loading import load_trained
from xraytrack.training import repeats as repeats_mod
from xraytrack.training.repeats import run_repeats


def test_summary_is_mean_sd_min_max_per_metric():
    per_seed = pd.DataFrame({"test_macro_f1": [0.8, 0.9, 1.0]}, index=[1, 2, 3])
    s = repeats.summarize(per_seed).loc["test_macro_f1"]
    assert (s["mean"], s["min"], s["max"], s["n"]) == pytest.approx((0.9, 0.8, 1.0, 3))
    assert s["sd"] == pytest.approx(0.1)  # n - 1 in the denominator


def test_each_seed_is_a_child_on_the_same_split_and_the_parent_reports_the_spread(dataset):
    cfg = quick_config(dataset, epochs=1, audit=False, classes=("COVID", "Normal"))
    parent_id = run_repeats(cfg, ["1", "2"])
    parent = mlflow.get_run(parent_id)
    children = mlflow.search_runs([parent.info.experiment_id], output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.data.tags["xraytrack.seed"] for c in children) == ["1", "2"]
    assert sorted(c.data.params["cfg.seed"] for c in children) == ["1", "2"]
    splits = {mlflow.artifacts.load_text(f"runs:/{c.info.run_id}/split.csv") for c in children}
    assert len(splits) == 1  # the same images in every split, whatever the seed
    weights = [mlflow.get_run(c.info.run_id).data.metrics["loss"] for c in children]
    assert weights[0] != weights[1]  # the seed did change the training
    for metric in ("test_macro_f1", "test_macro_auc", "restored_val_macro_f1"):
        values = [c.data.metrics[metric] for c in children]
        assert parent.data.metrics[f"{metric}_mean"] == pytest.approx(np.mean(values))
        assert parent.data.metrics[f"{metric}_sd"] == pytest.approx(np.std(values, ddof=1))
        assert parent.data.metrics[f"{metric}_min"] == pytest.approx(min(values))
    page = mlflow.artifacts.load_text(f"runs:/{parent_id}/repeats.md")
    assert "split is fixed" in page and "| test_macro_f1 |" in page and "seed 2" in page
    assert "cfg.seed" not in parent.data.params and parent.data.params["repeats.seeds"] == "1,2"
    by_seed = {c.data.tags["xraytrack.seed"]: c.info.run_id for c in children}
    with pytest.raises(XrayTrackError) as no_model:  # the id a user has at hand is the parent's
        load_trained(parent_id)
    assert str(no_model.value) == (
        f"run {parent_id} logged no 'model' model: it is the parent of a repeat over seeds; give "
        f"one of its children: seed 1 {by_seed['1']}, seed 2 {by_seed['2']}")
    assert load_trained(by_seed["1"]).run_id == by_seed["1"]


def test_a_rerun_reuses_finished_seeds(dataset, monkeypatch):
    cfg = quick_config(dataset, epochs=1, audit=False, classes=("COVID", "Normal"))
    run_repeats(cfg, ["1", "2"])
    trained = []
    real = repeats_mod.run_training
    monkeypatch.setattr(repeats_mod, "run_training",
                        lambda c, **kw: trained.append(c.seed) or real(c, **kw))
    run_repeats(cfg, ["1", "2", "3"])
    assert trained == [3]


def test_bad_seeds_are_one_line_errors(dataset):
    cfg = quick_config(dataset, epochs=1)
    for seeds, message in ((["1"], "two or more"), (["1", "1"], "two or more"),
                           (["1", "x"], "whole numbers")):
        with pytest.raises(XrayTrackError, match=message):
            run_repeats(cfg, seeds)
    config = Path(__file__).resolve().parents[1] / "experiments" / "simple_cnn.yaml"
    result = CliRunner().invoke(main, ["train", "--config", str(config),
                                       "--data-dir", str(dataset), "--seeds", "3"])
    assert result.exit_code == 1 and "two or more" in result.output
