import mlflow
import pytest
from click.testing import CliRunner

from xraytrack.cli import main
from xraytrack.errors import XrayTrackError
from xraytrack.tracking.registry import best_run, metric_mode, register_best


def _fake_run(experiment: str, status: str = "FINISHED", **metrics):
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
    mlflow.MlflowClient().set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_best_run_maximises_scores_minimises_losses_and_ignores_unfinished():
    good = _fake_run("e", test_macro_f1=0.9, val_loss=0.5)
    low_loss = _fake_run("e", test_macro_f1=0.5, val_loss=0.1)
    _fake_run("e", status="FAILED", test_macro_f1=0.99, val_loss=0.01)
    assert metric_mode("val_loss") == "min" and metric_mode("test_macro_auc") == "max"
    assert best_run("e", "test_macro_f1").info.run_id == good
    assert best_run("e", "val_loss").info.run_id == low_loss
    assert best_run("e", "test_macro_f1", mode="min").info.run_id == low_loss


def test_clear_errors_when_nothing_qualifies():
    _fake_run("failed-only", status="FAILED", test_macro_f1=0.9)
    with pytest.raises(XrayTrackError, match="no experiment named 'nope'.*'failed-only'"):
        best_run("nope", "test_macro_f1")
    with pytest.raises(XrayTrackError, match="has no FINISHED run"):
        best_run("failed-only", "test_macro_f1")
    _fake_run("other", val_loss=0.3)
    with pytest.raises(XrayTrackError, match="has the metric 'test_macro_f1'"):
        best_run("other", "test_macro_f1")


def test_register_sets_champion_tags_and_a_model_card(trained):
    run, version = register_best("xraytrack", "test_macro_f1", "cxr")
    assert run.info.run_id == trained["run_id"]
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("cxr", "champion")
    assert champion.version == version.version
    assert champion.tags["classes"] == "COVID,Normal,Viral Pneumonia"
    assert champion.tags["img_size"] == "32" and len(champion.tags["data_digest"]) == 64
    assert float(champion.tags["test_macro_f1"]) == pytest.approx(
        run.data.metrics["test_macro_f1"], abs=1e-4)
    assert "not for diagnosis" in champion.description.lower()
    model = mlflow.pyfunc.load_model("models:/cxr@champion")
    assert model.metadata.get_input_schema().input_names() == ["image"]


def test_register_cli_reports_a_missing_metric_in_one_line(trained):
    result = CliRunner().invoke(main, ["register", "--metric", "test_nothing"])
    assert result.exit_code == 1 and "has the metric 'test_nothing'" in result.output
    assert "Traceback" not in result.output
