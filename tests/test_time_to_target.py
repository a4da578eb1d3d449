"""bench/time_to_target.py reads a recipe's seeds from the store: a seed that was stopped and
resumed counts the time of both runs, and only a score at or above the target counts as reached."""

import os
import sys
from pathlib import Path

import mlflow
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import time_to_target  # noqa: E402

MINUTE = 60_000
DAY_START = 29_500_000  # minutes since 1970: a start time of 0 would read as "now"


def seed_run(client, experiment_id, start_min, end_min, epochs, score=None, resumed_from=None,
             status="FINISHED"):
    run = client.create_run(experiment_id, start_time=(DAY_START + start_min) * MINUTE)
    for epoch in range(epochs):
        client.log_metric(run.info.run_id, "val_loss", 1.0 / (epoch + 1), step=epoch)
    if score is not None:
        client.log_metric(run.info.run_id, "test_macro_f1", score)
    if resumed_from:
        client.set_tag(run.info.run_id, "xraytrack.resumed_from", resumed_from)
    client.set_terminated(run.info.run_id, status, end_time=(DAY_START + end_min) * MINUTE)
    return run.info.run_id


def test_seeds_count_resumed_time_and_reach_only_at_the_target(tmp_path):
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment("recipe")
    killed = seed_run(client, experiment, 0, 30, epochs=6, status="KILLED")
    resumed = seed_run(client, experiment, 40, 55, epochs=9, score=0.9512, resumed_from=killed)
    plain = seed_run(client, experiment, 60, 100, epochs=12, score=0.9499)
    parent = client.create_run(experiment).info.run_id
    client.log_dict(parent, {"2": plain, "1": resumed}, "child_runs.json")

    rows = time_to_target.seed_rows(client, "plateau", parent, target=0.95)

    assert [(r["seed"], r["interrupted_runs"], r["wall_min"], r["epochs"], r["reached"])
            for r in rows] == [("1", 1, "45.0", 9, True), ("2", 0, "40.0", 12, False)]
    assert [r["test_macro_f1"] for r in rows] == ["0.9512", "0.9499"]
    line = time_to_target.summary_line("plateau", rows, 0.95)
    assert "1 of 2 reach 0.95, the quickest of them took 45 min" in line
    assert "0.951 ± 0.001" in line
    assert "no seed reaches 0.95" in time_to_target.summary_line("plateau", rows[1:], 0.95)


def test_a_single_run_is_its_own_seed_and_shows_its_pace():
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment("readme")
    single = seed_run(client, experiment, 0, 36, epochs=12, score=0.9561)
    client.log_param(single, "cfg.seed", "42")

    rows = time_to_target.seed_rows(client, "README command", single, target=0.95)

    assert [(r["seed"], r["run"], r["epochs"], r["wall_min"], r["min_per_epoch"], r["reached"])
            for r in rows] == [("42", single[:8], 12, "36.0", "3.00", True)]
    line = time_to_target.summary_line("README command", rows, 0.95)
    assert "test macro-F1 0.956 over 1 seed;" in line
    assert "1 of 1 reach 0.95, the quickest of them took 36 min" in line


def test_a_run_the_store_does_not_hold_is_one_line(monkeypatch, capsys):
    store = os.environ["MLFLOW_TRACKING_URI"]
    monkeypatch.setattr(sys, "argv", ["time_to_target.py", "--store", store,
                                      "--recipe", "224 px=3250d0d0"])
    with pytest.raises(SystemExit) as stop:
        time_to_target.main()
    message = str(stop.value.code)
    assert message.startswith("time_to_target: recipe '224 px': Run with id=3250d0d0 not found")
    assert "\n" not in message


def test_the_section_replaces_only_its_own(tmp_path):
    from report import splice

    page = "# Benchmarks\n\n## 6. Scale\n\nold six\n\n## 7. Time to target: x\n\nold seven\n"
    new = splice(page, "## 7. Time to target: x", "## 7. Time to target: x\n\nnew seven")
    assert new == "# Benchmarks\n\n## 6. Scale\n\nold six\n\n## 7. Time to target: x\n\nnew seven\n"
    assert splice("# B\n", "## 7. T", "## 7. T\n\nfirst").endswith("# B\n\n## 7. T\n\nfirst\n")


def test_a_recipe_names_its_own_store_or_takes_the_default():
    assert time_to_target.recipe_source("plateau, patience 5=ab39", "sqlite:///a.db") == (
        "plateau, patience 5", "ab39", "sqlite:///a.db")
    assert time_to_target.recipe_source("x=5c39@http://u:p@host:5000", "sqlite:///a.db") == (
        "x", "5c39", "http://u:p@host:5000")
