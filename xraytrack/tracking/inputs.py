"""A dataset logged as a run's input while other runs may be logging the same dataset.

MLflow's SQL store looks the dataset up and inserts it when absent, in one transaction that takes
no lock: two runs logging the same data at the same moment to a PostgreSQL (or MySQL) store both
insert, and the second gets a unique-key violation (``dataset_pk``) back as BAD_REQUEST. SQLite
lets one writer in at a time, so a single machine never sees it. By the time the error comes
back the other run's insert has committed, so asking again finds the dataset and links it.
"""

from __future__ import annotations

import logging
import time

import mlflow
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)
ATTEMPTS = 3
CONFLICT_WORDS = ("UniqueViolation", "duplicate key value", "UNIQUE constraint failed",
                  "Duplicate entry", "IntegrityError")


def is_conflict(exc: MlflowException) -> bool:
    """Whether the store refused a write because a concurrent writer made the same row first."""
    return any(word in exc.message for word in CONFLICT_WORDS)


def log_input(dataset, context: str) -> None:
    """``mlflow.log_input``, asked again (up to ATTEMPTS times) when it lost that race."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            if attempt == ATTEMPTS or not is_conflict(exc):
                raise
            log.info("dataset %s was being logged by another run at the same moment; "
                     "asking the store again (%d/%d)", dataset.name, attempt + 1, ATTEMPTS)
            time.sleep(0.5 * attempt)
