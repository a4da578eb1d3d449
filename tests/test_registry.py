import mlflow
import pytest
from click.testing import CliRunner

from xraytrack.cli import main
from xraytrack.errors import XrayTrackError
from xraytrack.tracking.registry import best_run, metric_mode, register_best


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


def _candidate(experiment: str, digest: str = "split-a", **metrics) -> str:
    """A finished run with a split digest, metrics and a (trivial) logged 'classifier'."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_param("data.split_digest", digest)
        mlflow.log_metrics(metrics)
        mlflow.pyfunc.log_model(name="classifier", python_model=Constant(), pip_requirements=[])
    return run.info.run_id


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
    done = register_best("xraytrack", "test_macro_f1", "cxr")
    run, version = done.run, done.version
    assert done.alias == "champion"
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


def test_register_chooses_on_validation_unless_a_test_metric_is_named():
    lucky_on_test = _candidate("e", restored_val_macro_f1=0.80, test_macro_f1=0.95)
    best_on_val = _candidate("e", restored_val_macro_f1=0.90, test_macro_f1=0.70)
    done = register_best("e", name="m")
    assert done.run.info.run_id == best_on_val and done.alias == "champion"
    version = mlflow.MlflowClient().get_model_version_by_alias("m", "champion")
    assert version.tags["selected_by"] == "restored_val_macro_f1"
    assert register_best("e", "test_macro_f1", name="t").run.info.run_id == lucky_on_test


def test_the_gate_keeps_the_champion_unless_a_newcomer_is_better_by_the_margin():
    client = mlflow.MlflowClient()

    def champion_run() -> str:
        return client.get_model_version_by_alias("m", "champion").tags["source_run_id"]

    first = _candidate("g", restored_val_macro_f1=0.900)
    assert register_best("g", name="m").alias == "champion"
    close = _candidate("g", restored_val_macro_f1=0.903)
    done = register_best("g", name="m", min_delta=0.005)
    assert done.run.info.run_id == close and done.alias == "challenger"
    assert "margin is 0.005" in done.reason and champion_run() == first
    assert client.get_model_version_by_alias("m", "challenger").tags["promotion"] == done.reason
    better = _candidate("g", restored_val_macro_f1=0.920)
    assert register_best("g", name="m", min_delta=0.005).alias == "champion"
    assert champion_run() == better
    elsewhere = _candidate("g", digest="split-b", restored_val_macro_f1=0.990)
    done = register_best("g", name="m")
    assert done.alias == "challenger" and "another split" in done.reason
    assert champion_run() == better
    forced = register_best("g", name="m", force=True)
    assert forced.alias == "champion" and forced.reason.startswith("forced although")
    assert champion_run() == elsewhere
    again = register_best("g", name="m")
    assert again.version is None and "already champion" in again.reason


def test_register_cli_says_why_a_run_stays_challenger():
    _candidate("c", restored_val_macro_f1=0.9)
    first = CliRunner().invoke(main, ["register", "--experiment", "c", "--name", "m"])
    assert first.exit_code == 0 and "as champion" in first.output, first.output
    _candidate("c", restored_val_macro_f1=0.901)
    second = CliRunner().invoke(main, ["register", "--experiment", "c", "--name", "m"])
    assert second.exit_code == 0 and "as challenger" in second.output, second.output
    assert "chosen by restored_val_macro_f1 = 0.9010" in second.output
