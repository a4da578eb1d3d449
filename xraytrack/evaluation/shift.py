"""How different a site's images look to the model: can its own features tell them apart?

A logistic regression is trained, with 5-fold cross-validation, to tell the model's penultimate
features of internal test images from those of the site's images; its AUC is ``shift_auc``.
0.5: the site looks like home to the model. Near 1: the model sees at once that these images
come from elsewhere, so its internal numbers say little about how it will do there.
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUTPUT_LAYER = "probabilities"  # every xraytrack model ends in this Dense softmax


def penultimate_features(model: keras.Model, *image_sets: np.ndarray,
                         batch_size: int = 32) -> list[np.ndarray]:
    """The input of the final softmax layer for each set of (N, S, S) uint8 images. One feature
    model serves every set: one built per set made TensorFlow warn that it kept retracing."""
    features = keras.Model(model.inputs, model.get_layer(OUTPUT_LAYER).input)
    return [features.predict(images[..., None].astype("float32"), batch_size=batch_size,
                             verbose=0) for images in image_sets]


def shift_auc(internal: np.ndarray, site: np.ndarray, seed: int = 0) -> float:
    """Cross-validated AUC of telling site features (1) from internal ones (0)."""
    x = np.concatenate([internal, site])
    y = np.r_[np.zeros(len(internal)), np.ones(len(site))]
    folds = min(5, len(site), len(internal))
    if folds < 2:
        return float("nan")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    scores = cross_val_predict(clf, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def describe(auc: float) -> str:
    if np.isnan(auc):
        return "Shift could not be measured (too few images on one side)."
    if auc < 0.6:
        verdict = "the site's images look much like the internal test images to the model"
    elif auc < 0.8:
        verdict = "the model partly tells the site's images from internal ones"
    else:
        verdict = ("the model tells the site's images from internal ones almost at once: its "
                   "internal scores are weak evidence for this site")
    return (f"Shift AUC {auc:.3f} (0.5: indistinguishable, 1: fully separable, from the model's "
            f"own penultimate features): {verdict}.")
