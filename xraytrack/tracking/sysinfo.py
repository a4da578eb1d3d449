"""What hardware and software a run used, so a number in MLflow can be traced to a machine."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import subprocess
from pathlib import Path

import keras
import psutil

log = logging.getLogger(__name__)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def backend_devices() -> list[str]:
    """Devices the active Keras backend can compute on."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["cpu"] + [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def cuda_build() -> dict:
    """CUDA/cuDNN versions the backend was built against (empty on CPU-only builds)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        info = tf.sysconfig.get_build_info()
        return {k: info[k] for k in ("cuda_version", "cudnn_version") if k in info}
    if backend == "torch":
        import torch

        return {"cuda_version": torch.version.cuda, "cudnn_version": torch.backends.cudnn.version()}
    return {}


def gpus() -> list[dict]:
    """Name, memory and driver of each NVIDIA GPU, through NVML when it is available."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no NVML library or no driver: a CPU machine
        log.debug("no NVIDIA GPU information: %s", exc)
        return []
    driver = pynvml.nvmlSystemGetDriverVersion()
    found = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        found.append({
            "name": pynvml.nvmlDeviceGetName(handle),
            "memory_gib": round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 1),
            "driver": driver,
        })
    pynvml.nvmlShutdown()
    return found


def git_commit(path: Path = Path(__file__).parent) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def system_info() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "keras_backend": keras.config.backend(),
        "tensorflow": _version("tensorflow"),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "mlflow": _version("mlflow"),
        "devices": backend_devices(),
        "gpus": gpus(),
        **cuda_build(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def tags(info: dict) -> dict[str, str]:
    """The few facts worth filtering runs by in the MLflow UI."""
    gpu = info["gpus"][0] if info["gpus"] else {}
    out = {
        "sys.keras": info["keras"],
        "sys.backend": info["keras_backend"],
        "sys.tensorflow": info["tensorflow"],
        "sys.devices": ", ".join(info["devices"]),
        "sys.cpu": f"{info['cpu_model']} ({info['cpu_cores']} cores)",
        "sys.ram_gib": info["ram_gib"],
        "sys.gpu": f"{gpu['name']} ({gpu['memory_gib']} GiB, driver {gpu['driver']})" if gpu else "none",
        # what the backend was built against, even on a CPU-only machine
        "sys.cuda_build": info.get("cuda_version"),
        "sys.cudnn_build": info.get("cudnn_version"),
    }
    return {k: str(v) for k, v in out.items() if v not in (None, "")}
