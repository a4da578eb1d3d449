"""Preprocessing strategies against source shortcuts: what they accept, that they sit inside the
model (so every path applies them), and that ``border_crop`` takes a border signal away."""

from __future__ import annotations

import hashlib
import io
import json

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import quick_config
from PIL import Image

from xraytrack.cli import main
from xraytrack.config import ADDED_LATER, VOLATILE, TrainConfig
from xraytrack.data.images import load_grayscale, resize
from xraytrack.errors import XrayTrackError
from xraytrack.models import build_model
from xraytrack.models.preprocessing import canonical, jpeg_roundtrip, parse
from xraytrack.models.spec import ModelSpec
from xraytrack.serving.classifier import request_frame
from xraytrack.training.train import run_training

SIZE = 32


def test_strategies_combine_in_run_order_with_one_spelling():
    assert parse("equalize+border_crop=0.7") == {"border_crop": 0.7, "equalize": None}
    assert canonical("photometric+equalize+border_crop") == "border_crop=0.8+equalize+photometric=0.5"
    assert canonical("") == canonical("none") == "none"
    assert TrainConfig(architecture="simple_cnn", preprocess="equalize + none").preprocess == "equalize"


@pytest.mark.parametrize("text, message", [
    ("sharpen", "unknown preprocessing 'sharpen'"),
    ("border_crop=1.5", "give a value from 0.3 to 0.999"),
    ("outside_lung_dropout=0", "give a value from 0.01 to 1"),
    ("photometric=2", "give a value from 0.01 to 1"),
    ("lung_crop+border_crop", "both crop the image"),
    ("border_crop=wide", "must be a number"),
    ("equalize=2", "takes no value"),
])
def test_a_wrong_strategy_is_one_clear_line(text, message):
    with pytest.raises(XrayTrackError, match=message):
        parse(text)


def test_the_cli_refuses_a_wrong_strategy_before_training(dataset):
    result = CliRunner().invoke(main, ["train", "--config", str(_config(dataset)), "--data-dir",
                                       str(dataset), "--preprocess", "sharpen"])
    assert result.exit_code != 0
    assert "unknown preprocessing 'sharpen'" in result.output
    assert "Traceback" not in result.output
    assert not mlflow.search_runs(search_all_experiments=True, output_format="list")


def _config(dataset):
    path = dataset.parent / "simple.yaml"
    path.write_text("architecture: simple_cnn\nimg_size: 32\nepochs: 1\n")
    return path


def _model(preprocess: str):
    spec = ModelSpec(num_classes=2, img_size=SIZE, augment=False, preprocess=preprocess)
    return build_model("simple_cnn", spec)


def _bordered(center: np.ndarray, border_value: int, width: int = 4) -> np.ndarray:
    image = np.full((SIZE, SIZE), border_value, np.float32)
    image[width:-width, width:-width] = center[width:-width, width:-width]
    return image


def test_border_crop_makes_the_model_blind_to_the_border():
    center = np.random.default_rng(0).uniform(60, 180, (SIZE, SIZE))
    pair = np.stack([_bordered(center, 20), _bordered(center, 235)])[..., None]
    blind = _model("border_crop=0.7").predict(pair, verbose=0)
    np.testing.assert_allclose(blind[0], blind[1], atol=1e-6)
    seeing = _model("none").predict(pair, verbose=0)
    assert np.abs(seeing[0] - seeing[1]).max() > 1e-4


def test_equalize_is_keras_equalization_of_each_image_alone():
    """Keras' layer pools the histogram over the batch; ours must not: an image's result is the
    same alone or in any batch, and alone it is exactly Keras' formula."""
    from keras import layers

    from xraytrack.models.preprocessing import Equalize

    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.integers(60, 120, (1, SIZE, SIZE, 1)),
                            rng.integers(0, 256, (1, SIZE, SIZE, 1)),
                            np.full((1, SIZE, SIZE, 1), 7)]).astype("float32")
    together = np.asarray(Equalize()(batch))
    keras_formula = layers.Equalization(value_range=(0, 255))
    for i in range(len(batch)):
        alone = np.asarray(Equalize()(batch[i:i + 1]))
        np.testing.assert_array_equal(together[i:i + 1], alone)
        np.testing.assert_array_equal(alone, np.asarray(keras_formula(batch[i:i + 1], training=True)))
    assert together[0].min() == 0 and together[0].max() == 255  # a dull image spread out
    assert (together[2] == 7).all()  # one grey level: nothing to equalise


def test_equalize_applies_at_inference_and_photometric_only_while_training():
    dull = np.random.default_rng(1).uniform(100, 140, (2, SIZE, SIZE, 1)).astype("float32")
    model = _model("equalize+photometric")
    equalized = model.get_layer("equalize")(dull, training=False)
    assert float(np.min(equalized)) < 10 and float(np.max(equalized)) > 245
    photometric = model.get_layer("photometric")
    np.testing.assert_array_equal(np.asarray(photometric(dull, training=False)), dull)
    gamma_noise, *_, jpeg = photometric.steps
    assert np.abs(np.asarray(gamma_noise(dull, training=True)) - dull).mean() > 1
    np.testing.assert_array_equal(np.asarray(jpeg(dull, training=False)), dull)
    assert np.abs(np.asarray(jpeg(dull, training=True)) - dull).mean() > 1  # noise compresses badly


@pytest.mark.parametrize("rate", [0.25, 0.5, 1.0])
def test_photometric_alters_its_share_of_the_images_and_leaves_the_rest_as_they_are(rate):
    """The plain images inference sees stay part of training: with every image altered, the
    real-data model scored val macro-F1 0.92 on altered images and 0.74 on the same plain ones."""
    images = np.random.default_rng(2).uniform(60, 200, (400, SIZE, SIZE, 1)).astype("float32")
    layer = _model(f"photometric={rate}").get_layer("photometric")
    out = np.asarray(layer(images, training=True))
    untouched = np.all(out == images, axis=(1, 2, 3))
    assert abs((1 - untouched.mean()) - rate) < 0.08
    assert np.abs(out[~untouched] - images[~untouched]).mean() > 1


@pytest.mark.parametrize("quality", [20, 50, 90])
def test_jpeg_recompression_matches_pillows_grayscale_jpeg(quality):
    """150 px (not a multiple of 8) with smooth shading and an edge, as an X-ray has."""
    y, x = np.mgrid[0:150, 0:150]
    image = np.clip(120 + 60 * np.sin(x / 9) + 40 * np.cos(y / 13) + 30 * (x > 80), 0, 255)
    image = image.astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(image, "L").save(buffer, "JPEG", quality=quality)
    pillow = np.asarray(Image.open(buffer), dtype="float32")
    ours = np.asarray(jpeg_roundtrip(image[None, ..., None].astype("float32"),
                                     np.array([quality], "float32")))[0, ..., 0]
    assert ours.shape == image.shape
    assert np.abs(ours - pillow).mean() < 0.2
    assert np.abs(pillow - image).mean() > 2 * np.abs(ours - pillow).mean()  # it did compress


def _signal_dataset(root, where: str = "border", n_per_class: int = 60):
    """Two classes told apart only by the brightness of a 5-pixel border (``where="border"``) or
    of a central square inside the lung box (``"lungs"``); the rest drawn from one distribution."""
    rng = np.random.default_rng(3 if where == "border" else 4)
    for label, name in enumerate(("COVID", "Normal")):
        folder = root / name / "images"
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            image = np.clip(rng.normal(120, 30, (48, 48)), 0, 255)
            if where == "border":
                image[:5], image[-5:], image[:, :5], image[:, -5:] = (30 + 190 * label,) * 4
            else:
                image[14:34, 14:34] = 60 + 120 * label
            Image.fromarray(image.astype(np.uint8)).save(folder / f"{name}-{i}.png")
    return root


@pytest.mark.slow
def test_border_crop_takes_away_a_border_signal_and_travels_with_the_served_model(tmp_path):
    data = _signal_dataset(tmp_path / "border")
    scores, runs = {}, {}
    for preprocess in ("none", "border_crop=0.7+equalize"):
        cfg = quick_config(data, epochs=4, preprocess=preprocess, audit=False,
                           hyperparameters={"filters": 16, "learning_rate": 3e-3})
        runs[preprocess] = run_training(cfg)
        scores[preprocess] = mlflow.get_run(runs[preprocess]).data.metrics["test_accuracy"]
    assert scores["none"] >= 0.9, scores  # the border alone gives the class away...
    assert scores["border_crop=0.7+equalize"] <= 0.75, scores  # ...and cropped, nothing does
    assert mlflow.get_run(runs["border_crop=0.7+equalize"]).data.params["cfg.preprocess"] == \
        "border_crop=0.7+equalize"

    # The served pyfunc decodes a file and runs the logged network, preprocessing layers included:
    # its answer is the network's on the plain decoded pixels (then calibrated), so nothing
    # outside the model has to repeat the preprocessing. HTTP serves this same pyfunc
    # (tests/test_serving.py).
    run_id = runs["border_crop=0.7+equalize"]
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/classifier")
    network = mlflow.keras.load_model(f"runs:/{run_id}/model")
    assert {"border_crop", "equalize"} <= {layer.name for layer in network.layers}
    path = next((data / "Normal" / "images").iterdir())
    answer = served.predict(request_frame([path.read_bytes()]))
    pixels = resize(load_grayscale(path), SIZE)[None, ..., None].astype("float32")
    calibration = served.unwrap_python_model().calibration
    expected = calibration.apply(network.predict(pixels, verbose=0))[0]
    np.testing.assert_allclose(answer[["COVID", "Normal"]].iloc[0], expected, atol=1e-5)


def test_settings_added_later_keep_the_resume_key_of_earlier_versions_at_their_defaults():
    plain = TrainConfig(architecture="simple_cnn", data_dir="/data")
    items = {k: v for k, v in plain.params().items() if k not in ADDED_LATER}
    assert set(ADDED_LATER) <= set(plain.params())
    for changed in ({"preprocess": "border_crop"}, {"lr_schedule": "plateau"},
                    {"lr_schedule": "cosine", "warmup_epochs": 1}):
        other = TrainConfig(architecture="simple_cnn", data_dir="/data", **changed)
        assert other.resume_key() != plain.resume_key(), changed
    before = {k: v for k, v in items.items() if k not in VOLATILE}
    assert plain.resume_key() == hashlib.sha256(
        json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]


def test_onnx_export_refuses_equalize_in_one_line_and_keeps_border_crop(tmp_path):
    from xraytrack.serving.onnx_export import export_checked

    with pytest.raises(XrayTrackError, match="'equalize' cannot be exported to ONNX"):
        export_checked(_model("equalize"), SIZE, tmp_path / "equalize.onnx")
    assert not (tmp_path / "equalize.onnx").exists()
    assert export_checked(_model("border_crop=0.7"), SIZE, tmp_path / "crop.onnx") <= 1e-4
    lungs = _model("lung_crop+outside_lung_dropout")  # the dropout is a no-op at inference
    assert export_checked(lungs, SIZE, tmp_path / "lungs.onnx") <= 1e-4


def test_the_lung_box_comes_from_the_masks_or_else_the_audits_central_box(tmp_path):
    from xraytrack.explain.lungs import FALLBACK_BOX, lung_box

    for i, (top, left) in enumerate(((20, 10), (30, 20))):
        folder = tmp_path / f"C{i}" / "masks"
        folder.mkdir(parents=True)
        mask = np.zeros((100, 100), np.uint8)
        mask[top:80, left:90] = 255
        Image.fromarray(mask).save(folder / f"C{i}-1.png")
    box, n = lung_box(tmp_path, ["C0", "C1"])
    assert n == 2
    # the 2nd-98th percentile of the masks' boxes (tops 0.2 and 0.3: 0.202), widened by 0.02
    assert box == pytest.approx((0.202 - 0.02, 0.80 + 0.02, 0.102 - 0.02, 0.90 + 0.02), abs=1e-3)
    assert lung_box(tmp_path, ["elsewhere"]) == (FALLBACK_BOX, 0)


def test_lung_crop_sees_only_the_lung_box():
    box = (0.25, 0.75, 0.25, 0.75)
    spec = ModelSpec(num_classes=2, img_size=SIZE, augment=False, preprocess="lung_crop",
                     lung_box=box)
    model = build_model("simple_cnn", spec)
    base = np.random.default_rng(0).uniform(60, 180, (SIZE, SIZE)).astype("float32")
    outside, inside = base.copy(), base.copy()
    outside[:4] = 250  # rows 0-3 are outside the box (it starts at row 8)
    inside[12:16, 12:16] = 250
    out = model.predict(np.stack([base, outside, inside])[..., None], verbose=0)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    assert np.abs(out[0] - out[2]).max() > 1e-4


def test_outside_lung_dropout_fills_outside_the_box_while_training_only():
    import keras

    from xraytrack.models.preprocessing import OutsideLungDropout, box_region

    box = (0.25, 0.75, 0.25, 0.75)
    images = np.random.default_rng(2).uniform(0, 255, (3, SIZE, SIZE, 1)).astype("float32")
    layer = OutsideLungDropout(box, rate=1.0, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
    filled = np.asarray(layer(images, training=True))
    region = box_region(box, SIZE, SIZE)
    np.testing.assert_array_equal(filled[:, region], images[:, region])
    means = images.mean(axis=(1, 2, 3))
    np.testing.assert_allclose(filled[:, ~region, 0], np.repeat(means[:, None], (~region).sum(), 1),
                               rtol=1e-5)
    never = OutsideLungDropout(box, rate=0.01, seed=0)
    assert (np.asarray(never(images, training=True)) == images).mean() > 0.5
    again = OutsideLungDropout.from_config(layer.get_config())
    assert again.box == box and again.rate == 1.0
    assert isinstance(keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        layer)), OutsideLungDropout)


@pytest.mark.slow
def test_lung_crop_removes_a_border_signal_and_keeps_a_lung_signal(tmp_path):
    scores = {}
    for name in ("border", "lungs"):
        data = _signal_dataset(tmp_path / name, where=name)
        cfg = quick_config(data, epochs=4, preprocess="lung_crop+outside_lung_dropout",
                           audit=False, hyperparameters={"filters": 16, "learning_rate": 3e-3})
        run = mlflow.get_run(run_training(cfg))
        scores[name] = run.data.metrics["test_accuracy"]
        assert run.data.params["preprocess.lung_box_source"].startswith("the audit's fixed central box")
        assert run.data.params["preprocess.lung_box"] == "0.12,0.82,0.12,0.88"
    assert scores["border"] <= 0.75, scores  # the border is cropped away: nothing left to learn
    assert scores["lungs"] >= 0.9, scores  # what lies in the lungs survives the crop
