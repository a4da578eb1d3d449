"""Models: an architecture name, a ``ModelSpec`` and hyper-parameters in, a compiled Keras model out.

The seed project's architectures, each one builder that serves both ``train`` and ``tune``.

A builder takes keras-tuner ``HyperParameters`` (its search space, defaulting to the seed's
settings) and a ``ModelSpec`` (what the data dictates), and returns a compiled Keras model.
"""

from __future__ import annotations

import keras_tuner as kt

from xraytrack.errors import XrayTrackError
from xraytrack.models import cnn, mobilenet
from xraytrack.models.spec import ModelSpec

ARCHITECTURES = {
    "simple_cnn": cnn.simple_cnn,
    "dropout_cnn": cnn.dropout_cnn,
    "adapted_cnn": cnn.adapted_cnn,
    "mobilenet": mobilenet.mobilenet,
}

# Architectures built on a pretrained base, which two-phase fine-tuning (head first) needs.
PRETRAINED = ("mobilenet",)

__all__ = ["ARCHITECTURES", "PRETRAINED", "ModelSpec", "architecture_values", "build_model",
           "hyperparameters"]


def hyperparameters(values: dict | None = None) -> kt.HyperParameters:
    """A container whose pre-set ``values`` override the builder's defaults, ranges kept."""
    hp = kt.HyperParameters()
    hp.values.update(values or {})
    return hp


def architecture_values(hp: kt.HyperParameters) -> dict:
    """The architecture's hyper-parameters, without Hyperband's own 'tuner/...' bookkeeping."""
    return {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}


def build_model(architecture: str, spec: ModelSpec, hp: kt.HyperParameters | None = None):
    """Build ``architecture``; every pre-set hyper-parameter must be one the builder knows."""
    if architecture not in ARCHITECTURES:
        raise XrayTrackError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    hp = hp or hyperparameters()
    preset = set(architecture_values(hp))
    try:
        model = ARCHITECTURES[architecture](hp, spec)
    except ValueError as exc:  # a layer refusing a value given with --hp (dense_units=0)
        if not preset:
            raise
        given = ", ".join(f"{k}={hp.values[k]}" for k in sorted(preset))
        raise XrayTrackError(f"cannot build {architecture} with {given}: "
                             f"{str(exc).splitlines()[0]}") from None
    unknown = preset - {h.name for h in hp.space}
    if unknown:
        known = ", ".join(sorted(h.name for h in hp.space))
        raise XrayTrackError(
            f"{architecture} has no hyper-parameter {sorted(unknown)[0]!r} (it has: {known})"
        )
    return model
