"""A distributed search's chief and workers when one of them stops: the chief restarted, a worker
interrupted or cut off from its chief. (A whole chief and two workers run in
tests/test_tracking_server.py, against the shared server.)"""

import socket
import time
from pathlib import Path

import grpc
import keras_tuner as kt
import mlflow
import pytest
from click.testing import CliRunner

from xraytrack.cli import _what_is_left, main
from xraytrack.models import ModelSpec
from xraytrack.training import search_roles, tune
from xraytrack.training.tune import SearchSettings

REPO = Path(__file__).resolve().parents[1]


def _tuner(directory):
    hypermodel = tune.ArchitectureHyperModel("simple_cnn", ModelSpec(3, 32))
    return tune.make_tuner(SearchSettings(tuner="random", max_trials=3), hypermodel,
                           str(directory), seed=1, epochs=1, parent_run_id="")


def test_a_restarted_chief_takes_the_report_of_a_trial_it_gave_out_before_it_stopped(tmp_path):
    """keras-tuner saves the oracle before noting the trial's start; reloaded, the chief raised
    KeyError on the worker's report inside the oracle's lock, then hung on that lock."""
    before = _tuner(tmp_path)
    before.save()  # as the chief does before it serves the oracle
    trial = before.oracle.create_trial("tuner0")  # handed to a worker; then the chief stops
    after = _tuner(tmp_path)  # the same command again: it reloads the search
    assert trial.trial_id in after.oracle.trials
    after.oracle.update_trial(trial.trial_id, {"val_macro_f1": 0.5})  # the worker's epoch
    trial.status = kt.engine.trial.TrialStatus.COMPLETED
    after.oracle.end_trial(trial)  # and its trial's end
    assert after.oracle.trials[trial.trial_id].status == "COMPLETED"
    assert after.oracle.get_best_trials(1)[0].score == 0.5


class _Fits:
    def run_trial(self, trial, *args, **kwargs):
        return []  # no training: what is tested is where the trial's run goes


class _Worker(tune.TrackedTrials, _Fits):
    tuner_id, objective_name = "tuner0", "val_macro_f1"


def test_a_worker_files_each_trial_under_the_chiefs_current_parent_run():
    """A restarted chief opens a new parent run; trials after that belong under it."""
    experiment = mlflow.set_experiment("search").experiment_id
    client = mlflow.MlflowClient()
    old = client.create_run(experiment, tags={"xraytrack.search_key": "k"})
    client.set_terminated(old.info.run_id, "KILLED")  # the chief that stopped
    new = client.create_run(experiment, tags={"xraytrack.search_key": "k"})  # RUNNING
    worker = _Worker()
    worker.parent_run_id, worker.search_key = old.info.run_id, "k"
    worker.run_trial(kt.engine.trial.Trial(kt.HyperParameters(), trial_id="3"))
    (child,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string="tags.`xraytrack.role` = 'trial'")
    assert child.data.tags["mlflow.parentRunId"] == new.info.run_id


def test_under_mlflow_run_a_workers_own_run_is_its_record_not_its_first_trial(monkeypatch):
    """`mlflow run` makes a run before the worker starts (MLFLOW_RUN_ID); MLflow took it as the
    first trial's run, outside the search, so trials.csv and the UI lost that trial."""
    experiment = mlflow.set_experiment("search").experiment_id
    client = mlflow.MlflowClient()
    chief = client.create_run(experiment, run_name="tune-simple_cnn")
    own = client.create_run(experiment, run_name="tune")  # what `mlflow run` made
    monkeypatch.setenv("MLFLOW_RUN_ID", own.info.run_id)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    worker = _Worker()
    worker.parent_run_id = chief.info.run_id
    with search_roles.worker_record(chief.info.run_id):
        worker.run_trial(kt.engine.trial.Trial(kt.HyperParameters(), trial_id="0"))
    (trial,) = mlflow.search_runs([experiment], output_format="list",
                                  filter_string="tags.`xraytrack.role` = 'trial'")
    assert trial.info.run_id != own.info.run_id
    assert trial.data.tags["mlflow.parentRunId"] == chief.info.run_id
    record = client.get_run(own.info.run_id)
    assert record.info.run_name == "worker-tuner0"
    assert record.data.tags["mlflow.parentRunId"] == chief.info.run_id
    assert record.data.tags["xraytrack.role"] == "worker"
    assert record.info.status == "RUNNING"  # `mlflow run` ends it; Ctrl-C finds it again:
    assert _what_is_left("tune").startswith(" between trials")
    assert client.get_run(own.info.run_id).info.status == "KILLED"


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "failed to connect to all addresses"


def test_a_worker_that_loses_its_chief_says_so_in_one_line(dataset, monkeypatch):
    mlflow.set_experiment("search")
    with mlflow.start_run() as chief:
        pass
    monkeypatch.setattr(search_roles, "running_parent", lambda key: mlflow.get_run(chief.info.run_id))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")

    def chief_gone(*args, **kwargs):
        raise _Unavailable()

    monkeypatch.setattr(tune, "_search", chief_gone)
    result = CliRunner().invoke(main, [
        "tune", "--config", str(REPO / "experiments" / "simple_cnn.yaml"), "--data-dir",
        str(dataset), "--img-size", "32", "--tuner", "random", "--max-trials", "2"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error.startswith("Error: lost the search's chief at 127.0.0.1:8000 (UNAVAILABLE: failed "
                            "to connect to all addresses); the trials this worker finished are logged")


@pytest.mark.parametrize("tuner_id, says", [
    ("tuner1", " between trials; every trial this worker finished is logged. The chief waits "
               "for any trial it gave this worker: run it again with KERASTUNER_TUNER_ID=tuner1."),
    ("chief", " before its MLflow run started; nothing was logged."),
])
def test_ctrl_c_tells_each_role_how_to_go_on(monkeypatch, tuner_id, says):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
    assert _what_is_left("tune") == says
    assert search_roles.role() == ("worker" if tuner_id != "chief" else "chief")


def test_a_worker_says_when_its_chief_stops_answering_and_when_it_is_back(monkeypatch, capsys):
    """keras-tuner waits for a lost chief silently, up to an hour: it looked like a hang."""
    with socket.socket() as probe:  # a free port, with nothing listening on it yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    with search_roles.watching_the_chief(every=0.05, patience=3):
        lost = _wait_for(capsys, "does not answer")
        time.sleep(0.5)  # ten more checks, the chief still away
        with socket.create_server(("127.0.0.1", port)):  # the chief is back
            back = _wait_for(capsys, "answers again")
    said = lost + back + capsys.readouterr().out
    assert said.count("does not answer") == 1 and said.count("answers again") == 1  # once each


def _wait_for(capsys, text: str, seconds: float = 10) -> str:
    seen, deadline = "", time.monotonic() + seconds
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {seen!r}"
        time.sleep(0.05)
        seen += capsys.readouterr().out
    return seen
