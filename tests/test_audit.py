"""The shortcut audit flags a model that reads outside the lungs and clears one that reads inside."""

import keras
import numpy as np
import pytest
from PIL import Image

from xraytrack.explain import gradcam
from xraytrack.explain.audit import audit, verdict
from xraytrack.explain.lungs import FALLBACK_BOX, fallback_region, lung_regions, occlude
from xraytrack.models import ModelSpec, build_model, hyperparameters

SIZE = 64


def planted(n: int, where: str, seed: int):
    """The class is a 7x7 patch, dark or bright, at the centre ('inside' the lung box) or in the
    top-left corner ('outside' it), like a source's marker on the film."""
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(110, 15, (n, SIZE, SIZE)), 0, 255)
    y = np.arange(n) % 2
    at = slice(28, 35) if where == "inside" else slice(1, 8)
    images[:, at, at] = np.where(y == 1, 250, 10)[:, None, None]
    return images.astype(np.uint8), y


def trained_on(where: str):
    keras.utils.set_random_seed(0)
    x, y = planted(240, where, seed=1)
    model = build_model("simple_cnn", ModelSpec(2, SIZE, augment=False),
                        hyperparameters({"filters": 16, "dense_units": 32}))
    model.fit(x[..., None].astype("float32"), np.eye(2)[y], epochs=6, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="module")
def audits():
    results = {}
    for where in ("outside", "inside"):
        model = trained_on(where)
        x, y = planted(80, where, seed=2)
        regions = np.repeat(fallback_region(SIZE)[None], len(x), axis=0)
        probs = model.predict(x[..., None].astype("float32"), verbose=0)
        results[where] = audit(model, x, y, probs, ("plain", "patched"), regions,
                               np.zeros(len(x), bool))
    return results


@pytest.mark.parametrize("where, flagged", [("outside", True), ("inside", False)])
def test_audit_flags_only_the_model_whose_signal_is_outside_the_lungs(audits, where, flagged):
    result = audits[where]
    m = result.metrics
    assert m["audit_plain_balanced_accuracy"] > 0.95  # both models learned their patch
    assert result.flagged is flagged and m["audit_shortcut_flag"] == float(flagged)
    assert ("Shortcut warning" in result.text) is flagged
    assert "crops its input" not in result.text  # it sees the whole image
    removed, only = m["audit_lungs_removed_balanced_accuracy"], m["audit_lungs_only_balanced_accuracy"]
    if flagged:
        assert removed > 0.9 and only < 0.65
    else:
        assert removed < 0.65 and only > 0.9
    # a bootstrap interval around the lungs-removed scores, so two models' audits can be compared
    for metric in ("balanced_accuracy", "macro_auc"):
        name = f"audit_lungs_removed_{metric}"
        assert m[f"{name}_lo"] <= m[name] <= m[f"{name}_hi"]


def test_gradcam_attention_sits_more_in_the_lungs_for_the_inside_model(audits):
    inside = audits["inside"].metrics["audit_gradcam_lung_share"]
    outside = audits["outside"].metrics["audit_gradcam_lung_share"]
    assert inside > outside + 0.1


@pytest.mark.parametrize("preprocess, window", [("border_crop=0.5", (16, 48, 16, 48)),
                                                ("lung_crop", (8, 52, 8, 56))])
def test_gradcam_of_a_model_that_crops_points_at_the_evidence(preprocess, window):
    """A crop narrows what the feature map covers: the heatmap must be laid over that window of
    the input, not stretched over the whole image (which put it beside the evidence)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = np.clip(rng.normal(110, 15, (260, SIZE, SIZE, 1)), 0, 255).astype("float32")
    y = np.arange(len(x)) % 2
    x[:, 18:24, 40:46] = np.where(y == 1, 250, 10)[:, None, None, None]  # off-centre, in the crop
    model = build_model("simple_cnn", ModelSpec(2, SIZE, augment=False, preprocess=preprocess),
                        hyperparameters({"filters": 16, "dense_units": 32}))
    model.fit(x[:240], np.eye(2)[y[:240]], epochs=6, batch_size=16, verbose=0)
    assert gradcam.input_window(model) == window

    heat, probs = gradcam.gradcam(model, x[240:])
    assert (probs.argmax(axis=1) == y[240:]).all()
    top, bottom, left, right = window
    outside = np.ones((SIZE, SIZE), bool)
    outside[top:bottom, left:right] = False
    assert heat[:, outside].max() == 0  # the model never sees those pixels
    near = np.zeros((SIZE, SIZE))
    near[14:28, 36:50] = 1  # the patch and 4 pixels around it: 5% of the image
    share = (heat * near).sum(axis=(1, 2)) / heat.sum(axis=(1, 2))
    assert share.mean() > 0.25  # stretched over the whole image it was 0.02 and 0.09

    regions = np.repeat(fallback_region(SIZE)[None], len(probs), axis=0)
    text = audit(model, x[240:, ..., 0].astype(np.uint8), y[240:], probs, ("plain", "patched"),
                 regions, np.zeros(len(probs), bool)).text
    assert (f"crops its input before it looks (rows {top / SIZE:.0%}-{bottom / SIZE:.0%}, "
            f"columns {left / SIZE:.0%}-{right / SIZE:.0%} of the image)") in text


def test_verdict_thresholds():
    assert verdict(0.95, 0.90, 4) == (True, pytest.approx((0.90 - 0.25) / 0.70))
    assert verdict(0.95, 0.30, 4)[0] is False  # near chance without the lungs
    assert verdict(0.40, 0.38, 4)[0] is False  # retains skill, but little above chance


def test_masks_are_matched_despite_inconsistent_names_and_fallback_elsewhere(tmp_path):
    for cls, image_name, mask_name in [("Normal", "Normal-1.jpg", "NORMAL-1.png"),
                                       ("Viral Pneumonia", "Viral Pneumonia-1.jpg",
                                        "Viral_Pneumonia-1.png")]:
        (tmp_path / cls / "images").mkdir(parents=True)
        (tmp_path / cls / "masks").mkdir()
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / cls / "images" / image_name)
        mask = np.zeros((64, 64), np.uint8)
        mask[10:30, 5:20] = 255
        Image.fromarray(mask).convert("RGB").save(tmp_path / cls / "masks" / mask_name)
    paths = ["Normal/images/Normal-1.jpg", "Viral Pneumonia/images/Viral Pneumonia-1.jpg",
             "Normal/images/Normal-2.jpg"]
    regions, from_mask = lung_regions(tmp_path, paths, 32)
    assert from_mask.tolist() == [True, True, False]
    assert regions[0][5:15, 3:10].all() and not regions[0][20:, 20:].any()
    np.testing.assert_array_equal(regions[2], fallback_region(32))
    top, bottom, left, right = FALLBACK_BOX
    assert regions[2].mean() == pytest.approx((bottom - top) * (right - left), abs=0.05)


def test_occlusion_fills_with_the_image_mean():
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    region = np.zeros((1, 4, 4), bool)
    region[0, 1:3, 1:3] = True
    removed = occlude(img, region, keep="outside")
    only = occlude(img, region, keep="lungs")
    assert (removed[0][region[0]] == img.mean()).all()
    assert (removed[0][~region[0]] == img[0][~region[0]]).all()
    assert (only[0][~region[0]] == img.mean()).all() and (only[0][region[0]] == img[0][region[0]]).all()
