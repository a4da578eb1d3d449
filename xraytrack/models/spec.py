"""What the data and the run dictate about a model, as opposed to its tunable hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from xraytrack.errors import XrayTrackError


@dataclass(frozen=True)
class ModelSpec:
    num_classes: int
    img_size: int
    augment: bool = True
    horizontal_flip: bool = False  # off: laterality (heart on the left) is real signal in a CXR
    weights: str | None = None  # MobileNetV2 only: an .h5 path, "imagenet", or None for random
    preprocess: str = "none"  # models.preprocessing strategies, e.g. "border_crop=0.8+equalize"
    lung_box: tuple[float, float, float, float] | None = None  # lung_crop's: top, bottom, left, right

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.img_size, self.img_size, 1)


# What every compiled classifier reports each epoch (``val_`` + name on the validation split), and
# which way is better: the names ``monitor`` and a search's objective may use.
EPOCH_METRICS = {"loss": "min", "accuracy": "max", "auc": "max", "macro_f1": "max"}


def monitor_mode(monitor: str) -> str:
    """``min`` or ``max`` for a metric the model reports; a one-line error for any other name,
    so a misspelt ``monitor`` fails before the data is read, not after an epoch of training."""
    name = monitor.removeprefix("val_")
    if name not in EPOCH_METRICS:
        known = ", ".join(f"val_{m}" for m in EPOCH_METRICS)
        raise XrayTrackError(f"unknown monitor {monitor!r}; choose one of {known} "
                             "(or a training metric without 'val_')")
    return EPOCH_METRICS[name]


def optimizer(learning_rate: float, weight_decay: float) -> keras.optimizers.Optimizer:
    """Adam as in the seed; AdamW (decoupled weight decay) when a recipe asks for decay."""
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


def check_training_values(learning_rate: float, smoothing: float, decay: float) -> None:
    """Keras takes a negative learning rate or decay as given: the run trained and was logged
    FINISHED with a model no better than chance."""
    if not learning_rate > 0:
        raise XrayTrackError(f"learning_rate must be above 0; got {learning_rate}")
    if not 0 <= smoothing < 1:
        raise XrayTrackError(f"label_smoothing must be from 0 up to (not including) 1; got {smoothing}")
    if decay < 0:
        raise XrayTrackError(f"weight_decay must be at least 0; got {decay}")


def compile_classifier(model: keras.Model, hp, learning_rate: float, num_classes: int) -> keras.Model:
    """Categorical cross-entropy as in the seed, with metrics that survive class imbalance.

    Label smoothing and weight decay are fine-tuning recipe settings (issue 13): fixed
    hyper-parameters, 0 by default (the seed's loss and optimizer), set with ``--hp`` and varied
    by ``compare -P vary=hp.label_smoothing``; a search leaves them where the run put them."""
    smoothing = hp.Fixed("label_smoothing", 0.0)
    decay = hp.Fixed("weight_decay", 0.0)
    check_training_values(learning_rate, smoothing, decay)
    model.compile(
        optimizer=optimizer(learning_rate, decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
        metrics=[
            "accuracy",
            keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
            keras.metrics.F1Score(average="macro", name="macro_f1"),
        ],
    )
    return model
