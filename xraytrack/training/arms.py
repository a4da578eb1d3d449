"""What a comparison varies: one setting of the run, one arm per value.

``compare`` trains every arm from the same split, seed and starting weights and changes only this
setting: class balancing (the default), a preprocessing strategy against source shortcuts, or any
other setting of ``TrainConfig`` listed in ``VARIABLE`` or a hyper-parameter ``hp.<name>``. Each
arm's label is the value as the run logs it (``border_crop=0.8+equalize``), and since MLflow metric
names cannot hold ``+`` or ``=``, every label must also give a distinct metric name.
"""

from __future__ import annotations

import dataclasses

from xraytrack.config import TrainConfig, check_at_least
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation.metrics import metric_name
from xraytrack.models import preprocessing
from xraytrack.training import balancing

# Settings a comparison may vary. The others define the data, the split or the run itself.
VARIABLE = ("balance", "preprocess", "img_size", "batch_size", "epochs", "augment",
            "horizontal_flip", "weights", "monitor", "patience", "head_epochs")
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def check_vary(vary: str | None) -> str:
    vary = (vary or "balance").strip()
    if vary not in VARIABLE and not (vary.startswith("hp.") and len(vary) > 3):
        raise XrayTrackError(f"cannot vary {vary!r}: choose one of {', '.join(VARIABLE)} "
                             "or a hyper-parameter hp.<name>")
    return vary


def labels(vary: str, values) -> tuple[str, ...]:
    """The arms' labels, in the order given: checked, one spelling each, no two alike."""
    values = tuple(v.strip() for v in values if v.strip())
    if vary == "balance":
        return balancing.check_strategies(values)
    if not values:
        raise XrayTrackError(f"no value of {vary} given to compare (--strategies a,b,...)")
    out = tuple(preprocessing.canonical(v) for v in values) if vary == "preprocess" else values
    for value in out:
        _convert(vary, value)
    names = [metric_name(v) for v in out]
    clash = next((v for v, n in zip(out, names) if names.count(n) > 1), None)
    if clash is not None:
        raise XrayTrackError(f"{vary}={clash} is given twice, or gives the same metric name "
                             f"({metric_name(clash)}) as another value")
    return out


def arm_config(cfg: TrainConfig, vary: str, value: str) -> TrainConfig:
    """``cfg`` with the varied setting at this arm's value."""
    if vary.startswith("hp."):
        return dataclasses.replace(cfg, hyperparameters=cfg.hyperparameters
                                   | {vary[3:]: _convert(vary, value)})
    return dataclasses.replace(cfg, **{vary: _convert(vary, value)})


def neutral(cfg: TrainConfig, vary: str) -> TrainConfig:
    """``cfg`` with the varied setting at its default: what every arm of a comparison shares."""
    if vary.startswith("hp."):
        hps = {k: v for k, v in cfg.hyperparameters.items() if k != vary[3:]}
        return dataclasses.replace(cfg, hyperparameters=hps)
    return dataclasses.replace(cfg, **{vary: DEFAULTS[vary]})


def _convert(vary: str, value: str):
    """The text of a value as the setting's type (a hyper-parameter: a number when it is one)."""
    default = None if vary.startswith("hp.") else DEFAULTS[vary]
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
        if isinstance(default, int):
            number = int(value)
            check_at_least(vary, number)  # before the metric-name check: -1 would clash with 1
            return number
        if default is None and vary.startswith("hp."):
            return _number(value)
        return None if vary == "weights" and value.lower() == "none" else value
    except ValueError:
        raise XrayTrackError(f"{vary}={value}: not a valid value of that setting") from None


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
