"""What the data and the run dictate about a model, as opposed to its tunable hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass

import keras


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


def compile_classifier(model: keras.Model, learning_rate: float, num_classes: int) -> keras.Model:
    """Adam + categorical cross-entropy as in the seed, with metrics that survive class imbalance."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=[
            "accuracy",
            keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
            keras.metrics.F1Score(average="macro", name="macro_f1"),
        ],
    )
    return model
