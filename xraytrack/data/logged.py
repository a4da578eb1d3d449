"""A training run's own data, read back from what it logged: its manifest and its test images.

Decoding again, instead of reading the training cache, lets a run be audited or compared with a
new site on a machine that never trained it (about 7 s for the 2,199 test images of the shared
data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xraytrack.data.images import decode_files
from xraytrack.data.split import ARTIFACT, read_manifest
from xraytrack.errors import XrayTrackError


def read_logged_split(run_id: str) -> pd.DataFrame:
    """The manifest a training run logged (``Split.to_csv``, see ``training.train.log_data``)."""
    import mlflow

    return read_manifest(mlflow.artifacts.load_text(f"runs:/{run_id}/{ARTIFACT}"))


def logged_test_images(run, data_dir: str | None, img_size: int, classes):
    """(root, images, labels, paths) of the run's test split, in its manifest's order."""
    root = Path(data_dir or run.data.params.get("cfg.data_dir", ""))
    if not root.is_dir():
        raise XrayTrackError(f"data_dir {root} not found; pass --data-dir")
    test = read_logged_split(run.info.run_id).query("split == 'test'")
    images, kept, _ = decode_files(root, test["path"].tolist(), img_size)
    if not images:
        raise XrayTrackError(f"none of the run's test images is readable under {root}")
    kept_rows = test.iloc[kept]
    labels = [list(classes).index(cls) for cls in kept_rows["class"]]
    return root, np.stack(images), np.asarray(labels), kept_rows["path"].tolist()
