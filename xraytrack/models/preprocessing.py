"""Preprocessing strategies against source shortcuts, as layers inside the model.

Each class of the COVID-19 Radiography Database comes from its own hospitals, so burnt-in text,
borders and exposure style predict the class inside the database and mean nothing outside it.
These strategies take such cues away. Being layers of the model, they run identically in training,
evaluation, ``predict`` and the served model, on every Keras backend, and travel with the logged
model; the image cache stays the plain decoded image.

``cfg.preprocess`` names them joined by ``+`` (``equalize+border_crop=0.8``); they run in this
order whatever the order written:

- ``outside_lung_dropout[=p]``: while training only, each image with probability ``p`` (default
  0.5) has everything outside the lung box filled with its mean (the audit's occlusion as
  augmentation), so the border stops paying. First, on the image as it comes.
- ``border_crop[=f]``: keep the central fraction ``f`` (default 0.8) of each side, resized back to
  the input size, dropping burnt-in text and markers at the edges. Every pass.
- ``lung_crop``: keep the lung box only, resized back to the input size. Every pass. Instead of
  ``border_crop``, not with it.
- ``equalize``: histogram equalisation of each image on its own (``Equalize``). Every pass.
- ``photometric[=p]``: while training only, each image with probability ``p`` (default 0.5)
  gets a random gamma, contrast, blur and noise, then JPEG re-compression at a random quality
  (``RandomJpeg``), so exposure, scanner and export style stop being a cue. The rest stay as they
  are: with every image altered (``photometric=1``, the only behaviour before), a full-data
  ``mobilenet`` scored validation macro-F1 0.92 on images altered as in training and 0.74 on the
  same images plain, against 0.96 without the strategy (docs/results.md).

The lung box is one box for every image (``ModelSpec.lung_box``: top, bottom, left, right as
fractions): training takes it from the dataset's lung masks when it has them, else the audit's
fixed central box (``explain.lungs.lung_box``), and logs which. A per-image mask cannot be used,
since a new image at inference has none.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from xraytrack.errors import XrayTrackError
from xraytrack.explain.lungs import FALLBACK_BOX

ORDER = ("outside_lung_dropout", "border_crop", "lung_crop", "equalize", "photometric")
DEFAULTS = {"border_crop": 0.8, "outside_lung_dropout": 0.5, "photometric": 0.5}  # take a value
LIMITS = {"border_crop": (0.3, 0.999), "outside_lung_dropout": (0.01, 1.0), "photometric": (0.01, 1.0)}


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
    if "border_crop" in steps and "lung_crop" in steps:
        raise XrayTrackError("border_crop and lung_crop both crop the image: use one of them")
    return {name: steps[name] for name in ORDER if name in steps}


def _value(name: str, value: str) -> float | None:
    if name not in DEFAULTS:
        if value:
            raise XrayTrackError(f"preprocessing {name!r} takes no value (got {name}={value})")
        return None
    try:
        number = float(value) if value else DEFAULTS[name]
    except ValueError:
        raise XrayTrackError(f"{name}={value}: the value must be a number") from None
    low, high = LIMITS[name]
    if not low <= number <= high:
        raise XrayTrackError(f"{name}={value}: give a value from {low:g} to {high:g}")
    return number


def needs_lung_box(text: str | None) -> bool:
    return bool({"lung_crop", "outside_lung_dropout"} & set(parse(text)))


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


# The JPEG standard's luminance quantisation table (ITU T.81, Annex K.1), scaled by quality as
# libjpeg does; the DCT-II basis of an 8x8 block.
JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype="float32")
_k, _n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
DCT8 = (np.sqrt(np.where(_k == 0, 1 / 8, 2 / 8)) *
        np.cos((2 * _n + 1) * _k * np.pi / 16)).astype("float32")


def jpeg_roundtrip(images, quality):
    """Grayscale JPEG compression and decompression at ``quality`` (1-100, one per image) in
    keras.ops, so it runs on every backend: 8x8 block DCT, quantisation by libjpeg's scaled
    luminance table, inverse DCT. A grayscale JPEG has no chroma, so only the lossless entropy
    coding is left out; the result matches Pillow's to about one grey level."""
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    pad_h, pad_w = (-height) % 8, (-width) % 8
    x = ops.pad(images[..., 0], [[0, 0], [0, pad_h], [0, pad_w]], mode="symmetric") - 128.0
    rows, cols = (height + pad_h) // 8, (width + pad_w) // 8
    blocks = ops.transpose(ops.reshape(x, (-1, rows, 8, cols, 8)), (0, 1, 3, 2, 4))
    dct = ops.convert_to_tensor(DCT8)
    coefficients = ops.einsum("ij,brcjk,lk->brcil", dct, blocks, dct)
    q = ops.clip(ops.cast(quality, "float32"), 1.0, 100.0)
    scale = ops.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None, None, None]
    table = ops.clip(ops.floor((JPEG_LUMA * scale + 50.0) / 100.0), 1.0, 255.0)
    quantised = ops.round(coefficients / table) * table
    pixels = ops.einsum("ji,brcjk,kl->brcil", dct, quantised, dct) + 128.0
    pixels = ops.reshape(ops.transpose(pixels, (0, 1, 3, 2, 4)), (-1, rows * 8, cols * 8))
    return ops.clip(ops.round(pixels[:, :height, :width, None]), 0.0, 255.0)


@keras.saving.register_keras_serializable(package="xraytrack")
class RandomJpeg(layers.Layer):
    """While training: each image re-compressed as a JPEG of random quality in [low, high]."""

    def __init__(self, low: float = 30.0, high: float = 95.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.seed = low, high, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        quality = keras.random.uniform((ops.shape(images)[0],), self.low, self.high,
                                       seed=self.generator)
        return jpeg_roundtrip(images, ops.round(quality))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"low": self.low, "high": self.high, "seed": self.seed}


@keras.saving.register_keras_serializable(package="xraytrack")
class OutsideLungDropout(layers.Layer):
    """While training: with probability ``rate``, an image's pixels outside ``box`` become the
    image's mean (as the audit's occlusion fills them: no new black edge to learn)."""

    def __init__(self, box=FALLBACK_BOX, rate: float = 0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.box, self.rate, self.seed = tuple(box), rate, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        outside = ops.convert_to_tensor(~box_region(self.box, images.shape[1], images.shape[2]))
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        drop = keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < self.rate
        return ops.where(ops.logical_and(drop, outside[None, :, :, None]), mean, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"box": list(self.box), "rate": self.rate, "seed": self.seed}


def box_region(box, height: int, width: int) -> np.ndarray:
    """The box as a boolean (height, width) mask, in the pixels ``lung_crop`` keeps."""
    top, bottom, left, right = _pixels(box, height, width)
    region = np.zeros((height, width), dtype=bool)
    region[top:bottom, left:right] = True
    return region


def _pixels(box, height: int, width: int) -> tuple[int, int, int, int]:
    top, bottom, left, right = box
    return (round(top * height), max(round(top * height) + 1, round(bottom * height)),
            round(left * width), max(round(left * width) + 1, round(right * width)))


def training_first(steps: dict[str, float | None], box=None) -> list[layers.Layer]:
    """Random strategies that need the image as it comes (the lung box is in its frame)."""
    if "outside_lung_dropout" not in steps:
        return []
    return [OutsideLungDropout(box or FALLBACK_BOX, steps["outside_lung_dropout"],
                               name="outside_lung_dropout")]


def every_pass(steps: dict[str, float | None], img_size: int, box=None) -> list[layers.Layer]:
    """The deterministic strategies: the same in training and at inference."""
    out: list[layers.Layer] = []
    if "border_crop" in steps:
        side = max(1, round(img_size * steps["border_crop"]))
        out += [layers.CenterCrop(side, side, name="border_crop"),
                layers.Resizing(img_size, img_size, name="border_crop_resize")]
    if "lung_crop" in steps:
        top, bottom, left, right = _pixels(box or FALLBACK_BOX, img_size, img_size)
        out += [layers.Cropping2D(((top, img_size - bottom), (left, img_size - right)),
                                  name="lung_crop"),
                layers.Resizing(img_size, img_size, name="lung_crop_resize")]
    if "equalize" in steps:
        out.append(Equalize(name="equalize"))
    return out


@keras.saving.register_keras_serializable(package="xraytrack")
class Photometric(layers.Layer):
    """While training: a share ``rate`` of the images gets another acquisition style (gamma and
    noise, contrast, blur, then JPEG re-compression, last as a file's export is); the others pass
    as they are, so the plain images inference sees stay part of training."""

    def __init__(self, rate: float = 0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.generator = keras.random.SeedGenerator(seed)
        self.steps = [RandomGammaNoise(name="gamma_noise"),
                      layers.RandomContrast(0.3, name="contrast"),
                      layers.RandomGaussianBlur(factor=(0.0, 1.0), kernel_size=3, sigma=1.0,
                                                value_range=(0, 255), name="blur"),
                      RandomJpeg(name="jpeg")]

    def build(self, input_shape):
        for step in self.steps:
            step.build(input_shape)

    def call(self, images, training=None):
        if not training:
            return images
        altered = images
        for step in self.steps:
            altered = step(altered, training=True)
        chosen = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.generator)
        return ops.where(chosen < self.rate, altered, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"rate": self.rate, "seed": self.seed}


def training_only(steps: dict[str, float | None]) -> list[layers.Layer]:
    """The random strategies: no-ops at inference (Keras' random layers, and ours)."""
    if "photometric" not in steps:
        return []
    return [Photometric(steps["photometric"], name="photometric")]
