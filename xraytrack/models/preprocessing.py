"""Preprocessing strategies against source shortcuts, as layers inside the model.

Each class of the COVID-19 Radiography Database comes from its own hospitals, so burnt-in text,
borders and exposure style predict the class inside the database and mean nothing outside it.
These strategies take such cues away. Being layers of the model, they run identically in training,
evaluation, ``predict`` and the served model, on every Keras backend, and travel with the logged
model; the image cache stays the plain decoded image.

``cfg.preprocess`` names them joined by ``+`` (``equalize+border_crop=0.8``); they run in this
order whatever the order written:

- ``border_crop[=f]``: keep the central fraction ``f`` (default 0.8) of each side, resized back to
  the input size, dropping burnt-in text and markers at the edges. Every pass.
- ``equalize``: histogram equalisation of each image on its own (``Equalize``). Every pass.
- ``photometric``: while training only, random gamma, contrast, blur and noise, so exposure and
  scanner style stop being a cue. (JPEG re-compression is not among them: no backend-neutral op.)
"""

from __future__ import annotations

import keras
from keras import layers, ops

from xraytrack.errors import XrayTrackError

ORDER = ("border_crop", "equalize", "photometric")
DEFAULT_CROP = 0.8


def parse(text: str | None) -> dict[str, float | None]:
    """``"equalize+border_crop=0.7"`` -> ``{"border_crop": 0.7, "equalize": None}``, in run order."""
    steps: dict[str, float | None] = {}
    for part in filter(None, (text or "none").replace(" ", "").split("+")):
        name, _, value = part.partition("=")
        if name == "none" and not value:
            continue
        if name not in ORDER:
            raise XrayTrackError(f"unknown preprocessing {name!r}: use none or any of "
                                 f"{', '.join(ORDER)} joined by '+'")
        steps[name] = _value(name, value)
    return {name: steps[name] for name in ORDER if name in steps}


def _value(name: str, value: str) -> float | None:
    if name != "border_crop":
        if value:
            raise XrayTrackError(f"preprocessing {name!r} takes no value (got {name}={value})")
        return None
    try:
        fraction = float(value) if value else DEFAULT_CROP
    except ValueError:
        raise XrayTrackError(f"border_crop={value}: the fraction must be a number") from None
    if not 0.3 <= fraction < 1:
        raise XrayTrackError(f"border_crop={value}: keep a fraction from 0.3 to below 1")
    return fraction


def canonical(text: str | None) -> str:
    """One spelling per strategy, so logged parameters and resume keys agree."""
    steps = parse(text)
    if not steps:
        return "none"
    return "+".join(name if value is None else f"{name}={value:g}" for name, value in steps.items())


@keras.saving.register_keras_serializable(package="xraytrack")
class Equalize(layers.Layer):
    """Histogram equalisation of each image on its own, on every pass: Keras' formula (the
    ``Equalization`` layer's), but that layer pools one histogram over the whole batch, so an
    image's pixels would depend on the images sent with it, and it is skipped outside training.

    Per image without a loop or a 256-wide one-hot: pixel level ``v`` of image ``i`` becomes the
    key ``256 i + v``; in the sorted keys of the batch, ``searchsorted`` counts the pixels at or
    below each key, which minus the ``i`` whole images before it is image ``i``'s CDF at ``v``."""

    def call(self, images):
        shape = ops.shape(images)
        n, size = shape[0], shape[1] * shape[2] * shape[3]
        levels = ops.cast(ops.clip(ops.floor(images), 0, 255), "int32")
        flat = ops.reshape(levels, (n, -1))
        image = ops.expand_dims(ops.arange(n, dtype="int32"), 1)
        keys = flat + 256 * image
        ranked = ops.sort(ops.reshape(keys, (-1,)))
        before = image * size  # pixels of the images ahead of image i in the sorted keys

        def at_or_below(k):  # int64 on some backends: one dtype for the arithmetic
            return ops.cast(ops.searchsorted(ranked, k, side="right"), "int32")

        cdf = ops.reshape(at_or_below(ops.reshape(keys, (-1,))), (n, -1))
        cdf_min = ops.expand_dims(at_or_below(ops.min(keys, axis=1)), 1) - before
        cdf = ops.cast(cdf - before - cdf_min, "float32")
        spread = ops.cast(size - cdf_min, "float32")  # 0 for a one-level image: left as it is
        equalized = ops.round(cdf * 255.0 / ops.maximum(spread, 1.0))
        out = ops.where(spread > 0, equalized, ops.cast(flat, "float32"))
        return ops.cast(ops.reshape(out, shape), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="xraytrack")
class RandomGammaNoise(layers.Layer):
    """While training: each image to a random gamma in [1/g, g], plus Gaussian pixel noise (on
    0-255 pixels; Keras' own noise layer takes only unit-scale inputs)."""

    def __init__(self, gamma: float = 1.5, noise: float = 6.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.gamma, self.noise, self.seed = gamma, noise, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        log_gamma = keras.random.uniform((batch, 1, 1, 1), -1.0, 1.0, seed=self.generator)
        gamma = ops.exp(log_gamma * ops.log(self.gamma))
        unit = ops.clip(images / 255.0, 1e-6, 1.0)
        noisy = 255.0 * ops.power(unit, gamma) + keras.random.normal(
            ops.shape(images), stddev=self.noise, seed=self.generator)
        return ops.clip(noisy, 0.0, 255.0)

    def get_config(self):
        return super().get_config() | {"gamma": self.gamma, "noise": self.noise, "seed": self.seed}


def every_pass(steps: dict[str, float | None], img_size: int) -> list[layers.Layer]:
    """The deterministic strategies: the same in training and at inference."""
    out: list[layers.Layer] = []
    if "border_crop" in steps:
        side = max(1, round(img_size * steps["border_crop"]))
        out += [layers.CenterCrop(side, side, name="border_crop"),
                layers.Resizing(img_size, img_size, name="border_crop_resize")]
    if "equalize" in steps:
        out.append(Equalize(name="equalize"))
    return out


def training_only(steps: dict[str, float | None]) -> list[layers.Layer]:
    """The random strategies: no-ops at inference (Keras' random layers, and ours)."""
    if "photometric" not in steps:
        return []
    return [RandomGammaNoise(name="photometric_gamma_noise"),
            layers.RandomContrast(0.3, name="photometric_contrast"),
            layers.RandomGaussianBlur(factor=(0.0, 1.0), kernel_size=3, sigma=1.0,
                                      value_range=(0, 255), name="photometric_blur")]
