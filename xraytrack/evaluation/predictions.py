"""``predictions.csv``: one row per image, in manifest order, with its label and probabilities.

The writer and its reader live together, so what a comparison or a later evaluation reads back
is exactly what the run wrote.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd

ARTIFACT = "predictions.csv"


@dataclass(frozen=True)
class Predictions:
    """Row-aligned labels (indices into ``classes``), probabilities and image paths."""

    y_true: np.ndarray
    probs: np.ndarray
    paths: list[str]


def to_frame(paths, y_true, probs, classes) -> pd.DataFrame:
    frame = pd.DataFrame({
        "path": paths,
        "true": [classes[i] for i in y_true],
        "predicted": [classes[i] for i in probs.argmax(axis=1)],
    })
    for c, name in enumerate(classes):
        frame[name] = probs[:, c]
    return frame


def log_predictions(paths, y_true, probs, classes) -> None:
    """Write ``predictions.csv`` into the active run."""
    buf = io.StringIO()
    to_frame(paths, y_true, probs, classes).to_csv(buf, index=False)
    mlflow.log_text(buf.getvalue(), ARTIFACT)


def from_frame(frame: pd.DataFrame, classes: tuple[str, ...]) -> Predictions:
    y = frame["true"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return Predictions(y, frame[list(classes)].to_numpy(), frame["path"].tolist())


def read_predictions(run_id: str, classes: tuple[str, ...]) -> Predictions:
    """The ``predictions.csv`` a run logged, as written by ``log_predictions``."""
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{ARTIFACT}")
    return from_frame(pd.read_csv(io.StringIO(text)), classes)
