"""What a comparison may vary, and how each value becomes a run's settings."""

import pytest
from helpers import quick_config

from xraytrack.errors import XrayTrackError
from xraytrack.training import arms
from xraytrack.training.compare import compare_key


def test_each_value_becomes_the_setting_with_its_type(tmp_path):
    cfg = quick_config(tmp_path)
    assert arms.arm_config(cfg, "img_size", "64").img_size == 64
    assert arms.arm_config(cfg, "augment", "True").augment is True
    assert arms.arm_config(cfg, "hp.learning_rate", "3e-4").hyperparameters == {
        "filters": 16, "learning_rate": 3e-4}
    assert arms.arm_config(cfg, "preprocess", "equalize+border_crop").preprocess == (
        "border_crop=0.8+equalize")
    assert arms.arm_config(cfg, "weights", "none").weights is None


def test_labels_are_canonical_and_must_give_distinct_metric_names():
    assert arms.labels("preprocess", [" none", "equalize+border_crop=0.7"]) == (
        "none", "border_crop=0.7+equalize")
    with pytest.raises(XrayTrackError, match="given twice"):
        arms.labels("preprocess", ["equalize+border_crop", "border_crop=0.8+equalize"])
    with pytest.raises(XrayTrackError, match="augment=maybe: not a valid value"):
        arms.labels("augment", ["true", "maybe"])
    with pytest.raises(XrayTrackError, match="no value of epochs"):
        arms.labels("epochs", [])


def test_every_arm_shares_one_key_and_balancing_keeps_its_earlier_key(tmp_path):
    cfg = quick_config(tmp_path)
    keys = {compare_key(arms.arm_config(cfg, "preprocess", p), vary="preprocess")
            for p in ("none", "equalize", "border_crop=0.7")}
    assert len(keys) == 1
    assert keys != {compare_key(cfg)}  # a preprocessing comparison is not a balancing one
    # the key a balancing comparison had before any other setting could vary
    import dataclasses
    assert compare_key(arms.arm_config(cfg, "balance", "oversample")) == (
        dataclasses.replace(cfg, balance="none").resume_key(role="compare"))
