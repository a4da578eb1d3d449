"""``-P distribute``: data-parallel training over every local device, with the engine each backend
already has: ``tf.distribute.MirroredStrategy`` on TensorFlow, ``keras.distribution.DataParallel``
on JAX. Each device holds a copy of the model and takes an equal share of every batch; gradients
are averaged, so a step is the same step as on one device.

``batch_size`` stays the global batch (what one optimizer step sees); each replica gets
``batch_size / replicas``, logged as ``distribute.per_replica_batch`` with the device list.
``auto`` spreads over the GPUs (TPUs) when there are two or more and otherwise stays on one device.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import keras

from xraytrack.errors import XrayTrackError

MODES = ("auto", "none", "data_parallel")


@dataclass(frozen=True)
class Plan:
    mode: str  # "none" or "data_parallel", after resolving "auto"
    devices: tuple[str, ...] = ()

    def params(self, batch_size: int) -> dict[str, str]:
        replicas = max(len(self.devices), 1)
        return {"distribute.mode": self.mode, "distribute.devices": ",".join(self.devices),
                "distribute.replicas": str(replicas),
                "distribute.per_replica_batch": str(batch_size // replicas)}


def local_devices() -> list[str]:
    """The devices this process sees: accelerators if any, else CPUs (TensorFlow's logical ones)."""
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return list(keras.distribution.list_devices())


def _accelerators(devices: list[str]) -> list[str]:
    return [d for d in devices if any(k in d.lower() for k in ("gpu", "tpu", "cuda"))]


def plan(mode: str, batch_size: int) -> Plan:
    """What ``mode`` means on this machine; a setting that cannot work fails before any run."""
    if mode not in MODES:
        raise XrayTrackError(f"unknown distribute mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "none":
        return Plan("none")
    backend = keras.config.backend()
    if backend not in ("tensorflow", "jax"):
        if mode == "auto":
            return Plan("none")
        raise XrayTrackError(f"distribute=data_parallel runs on the TensorFlow or JAX backend, "
                             f"not {backend}")
    devices = local_devices()
    if mode == "auto":
        devices = _accelerators(devices)
        if len(devices) < 2:
            return Plan("none")
    if len(devices) < 2:
        raise XrayTrackError(f"distribute=data_parallel needs two or more devices; this process "
                             f"sees {', '.join(devices) or 'none'}")
    if batch_size % len(devices):
        raise XrayTrackError(f"batch_size {batch_size} does not split evenly over "
                             f"{len(devices)} devices; choose a multiple of {len(devices)}")
    return Plan("data_parallel", tuple(devices))


class Placement:
    """Where one run's model lives. ``scope()`` is entered to build the model and again to fit
    it: the same engine both times (TensorFlow refuses a model built under another strategy).
    ``single_device`` gives the fitted model back on one device for evaluation and logging: the
    logged model carries no strategy, and a one-image prediction (the logged input example) is not
    split into an empty share, which TensorFlow's convolutions reject."""

    def __init__(self, plan: Plan):
        self.plan, self._engine = plan, None

    @contextmanager
    def scope(self):
        if self.plan.mode == "none":
            yield
            return
        if self._engine is None:
            # A model built earlier in this process (a comparison's previous strategy) leaves
            # Keras' global state behind, which a mirrored model must not share.
            keras.backend.clear_session()
            self._engine = self._make_engine()
        with self._engine.scope():
            yield

    def _make_engine(self):
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            return tf.distribute.MirroredStrategy(list(self.plan.devices))
        return keras.distribution.DataParallel(devices=list(self.plan.devices))

    def single_device(self, model: keras.Model) -> keras.Model:
        if self.plan.mode == "none":
            return model
        plain = keras.models.clone_model(model)
        plain.set_weights(model.get_weights())
        return plain
