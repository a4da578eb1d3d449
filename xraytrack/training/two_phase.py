"""Two-phase fine-tuning, a candidate of issue 13's recipe: the new head first, on a frozen
pretrained base, then the base's trainable layers with it (the ``head_epochs`` setting).

Why: the head starts from random weights, so its first gradients are large and noisy; sent into
the pretrained layers at once they can wash out what ImageNet taught them. keras-io's transfer-
learning guide trains the head alone first, then unfreezes and recompiles at a low rate. Here the
head phase runs at ``HEAD_RATE_FACTOR`` times the run's learning rate (1e-3 for the default 1e-4:
Adam's default and the guide's rate), with the base's BatchNormalization in inference mode (a
frozen layer in Keras 3); the second phase is the run's own recipe, with a fresh optimizer.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import keras

from xraytrack.errors import XrayTrackError
from xraytrack.models import PRETRAINED

HEAD_RATE_FACTOR = 10
HEAD_BACKUP = "backup-head"  # the head phase's BackupAndRestore folder in the checkpoint
HEAD_WEIGHTS = "head.weights.h5"  # the model after the head phase, until fine-tuning backs up


def check(head_epochs: int, epochs: int, architecture: str) -> None:
    """One line for a head phase that cannot run, before anything is trained."""
    if head_epochs < 0 or (head_epochs and head_epochs >= epochs):
        raise XrayTrackError(f"head_epochs ({head_epochs}) must be 0 or fewer than epochs "
                             f"({epochs})")
    if head_epochs and architecture not in PRETRAINED:
        raise XrayTrackError(f"head_epochs needs a pretrained base ({', '.join(PRETRAINED)}); "
                             f"{architecture} trains every layer from the start")


def pretrained_base(model: keras.Model) -> keras.Model:
    """The nested model the builder loaded (MobileNetV2 without its top): the one with weights,
    beside the augmentation pipeline, which is a nested model too."""
    bases = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.weights]
    if len(bases) != 1:
        raise XrayTrackError(f"head_epochs needs a model with one pretrained base; {model.name} "
                             f"has {len(bases)}")
    return bases[0]


def recompile(model: keras.Model, learning_rate: float) -> None:
    """Compile ``model`` again as it was compiled, with a fresh optimizer at ``learning_rate``:
    Keras reads which weights train at compile time."""
    config = model.get_compile_config()
    config["optimizer"]["config"]["learning_rate"] = learning_rate
    model.compile_from_config(config)


def compiled_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@contextmanager
def head_only(model: keras.Model):
    """Within: the base frozen and the model compiled at the head rate. After: the base's
    trainable layers as the builder left them, compiled at the model's own rate."""
    base = pretrained_base(model)
    flags = [(layer, layer.trainable) for layer in base.layers]
    rate = compiled_rate(model)
    base.trainable = False
    recompile(model, rate * HEAD_RATE_FACTOR)
    try:
        yield
    finally:
        base.trainable = True
        for layer, trainable in flags:
            layer.trainable = trainable
        recompile(model, rate)
        # BackupAndRestore sets this private epoch when it restores a backup, and Keras never
        # clears it: left alone, a resumed head phase would also set where fine-tuning starts.
        model._initial_epoch = None


def load_weights(model: keras.Model, path: Path) -> None:
    """The layers' weights of ``path``, without the optimizer state saved with them: a weights
    file from the other phase holds another optimizer's variables, which Keras skips with a
    warning, and each phase starts its optimizer afresh anyway."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(str(path))
