"""A dataset input that loses the store's insert race to a concurrent run is logged all the same;
any other refusal is not hidden."""

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from xraytrack.tracking import inputs

RACE = ('(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
        '"dataset_pk"')


def _dataset():
    return mlflow.data.from_pandas(pd.DataFrame({"path": ["a.png"], "class": ["COVID"]}),
                                   name="shared", targets="class")


def _flaky(monkeypatch, message: str, failures: int) -> list:
    calls, real = [], mlflow.log_input

    def log_input(dataset, context=None):
        calls.append(context)
        if len(calls) <= failures:
            raise MlflowException(message)  # what the server returns as BAD_REQUEST
        real(dataset, context=context)

    monkeypatch.setattr(mlflow, "log_input", log_input)
    monkeypatch.setattr(inputs.time, "sleep", lambda s: None)
    return calls


def test_a_lost_insert_race_is_asked_again_and_the_input_is_linked(monkeypatch):
    calls = _flaky(monkeypatch, RACE, failures=1)
    with mlflow.start_run() as run:
        inputs.log_input(_dataset(), context="training")
    assert calls == ["training", "training"]
    (linked,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert linked.dataset.name == "shared" and linked.tags[0].value == "training"


def test_other_refusals_and_a_race_that_keeps_failing_are_raised(monkeypatch):
    calls = _flaky(monkeypatch, "Permission denied", failures=9)
    with mlflow.start_run(), pytest.raises(MlflowException, match="Permission denied"):
        inputs.log_input(_dataset(), context="training")
    assert len(calls) == 1
    calls = _flaky(monkeypatch, RACE, failures=9)
    with mlflow.start_run(), pytest.raises(MlflowException, match="dataset_pk"):
        inputs.log_input(_dataset(), context="training")
    assert len(calls) == inputs.ATTEMPTS
