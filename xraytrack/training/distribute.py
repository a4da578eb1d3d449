"""``-P distribute``: data-parallel training over every local device, with the engine each backend
already has: ``tf.distribute.MirroredStrategy`` on TensorFlow, ``keras.distribution.DataParallel``
on JAX. Each device holds a copy of the model and takes an equal share of every batch; gradients
are averaged, so a step is the same step as on one device.

``batch_size`` stays the global batch (what one optimizer step sees); each replica gets
``batch_size / replicas``, logged as ``distribute.per_replica_batch`` with the device list.
``auto`` spreads over the GPUs (TPUs) when there are two or more and otherwise stays on one device.

Several hosts (JAX only) join through ``keras.distribution.initialize``, set up by the launcher's
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID``: one mesh over every
host's devices. Each process then reads only its share of every batch (``Plan.shard``), and only
process 0 (the chief) talks to MLflow, keeps the best checkpoint and evaluates; the others fit
in step with it and stop (``docs/scale.md``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import keras

from xraytrack.errors import XrayTrackError

MODES = ("auto", "none", "data_parallel")


@dataclass(frozen=True)
class Plan:
    mode: str  # "none" or "data_parallel", after resolving "auto"
    devices: tuple[str, ...] = ()  # every host's, when several hosts take part
    process: int = 0  # this host's index; 0 is the chief
    processes: int = 1

    @property
    def chief(self) -> bool:
        return self.process == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """(this process, processes) when each process must feed its own share of a batch."""
        return (self.process, self.processes) if self.processes > 1 else None

    def params(self, batch_size: int) -> dict[str, str]:
        replicas = max(len(self.devices), 1)
        return {"distribute.mode": self.mode, "distribute.devices": ",".join(self.devices),
                "distribute.replicas": str(replicas), "distribute.processes": str(self.processes),
                "distribute.per_replica_batch": str(batch_size // replicas)}


def hosts() -> tuple[int, int]:
    """(this process, processes) as the multi-host launcher set them; (0, 1) on one host."""
    count = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1)
    index = int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID") or 0)
    if count > 1 and not 0 <= index < count:
        raise XrayTrackError(f"KERAS_DISTRIBUTION_PROCESS_ID must be 0 to {count - 1}, got {index}")
    return index, count


_joined = False


def join_hosts() -> None:
    """Join the other hosts' processes into one JAX runtime, once per process, before anything
    touches a device. Nothing to do on one host."""
    global _joined
    if _joined or hosts()[1] == 1:
        return
    if keras.config.backend() != "jax":
        raise XrayTrackError("training over several hosts runs on the JAX backend "
                             f"(KERAS_BACKEND=jax), not {keras.config.backend()}")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts; GPUs use NCCL
    keras.distribution.initialize()  # reads the KERAS_DISTRIBUTION_* variables
    _joined = True


def single_host(what: str) -> None:
    """A one-line refusal for work that does not run over several hosts."""
    if hosts()[1] > 1:
        raise XrayTrackError(f"{what} runs on one host; over several hosts, launch one `train` "
                             "per seed or setting")


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
    index, count = hosts()
    if count > 1:
        return _multi_host_plan(mode, batch_size, index, count)
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


def _multi_host_plan(mode: str, batch_size: int, index: int, count: int) -> Plan:
    if mode == "none":
        raise XrayTrackError(f"distribute=none cannot run over {count} hosts; use auto or "
                             "data_parallel, or unset KERAS_DISTRIBUTION_NUM_PROCESSES")
    join_hosts()
    devices = [str(d) for d in keras.distribution.list_devices()]
    if batch_size % len(devices):
        raise XrayTrackError(f"batch_size {batch_size} does not split evenly over the "
                             f"{len(devices)} devices of {count} hosts; choose a multiple of "
                             f"{len(devices)}")
    return Plan("data_parallel", tuple(devices), index, count)


@contextmanager
def outside_mesh():
    """Work one process does alone inside ``fit`` (the chief's best checkpoint): Keras' saving
    makes throwaway variables, which under the multi-host mesh JAX would place on every host and
    so wait for hosts that are not saving."""
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


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
        # Over several hosts each process's sequence already yields its share (Plan.shard).
        return keras.distribution.DataParallel(devices=list(self.plan.devices),
                                               auto_shard_dataset=False)

    def single_device(self, model: keras.Model) -> keras.Model:
        if self.plan.mode == "none":
            return model
        plain = keras.models.clone_model(model)
        plain.set_weights(model.get_weights())
        return plain
