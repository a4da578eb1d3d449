import keras
import numpy as np
import pytest
from conftest import REAL_WEIGHTS

from xraytrack.errors import XrayTrackError
from xraytrack.models import ARCHITECTURES, ModelSpec, build_model, hyperparameters
from xraytrack.models.mobilenet import BASE_LAYERS


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("num_classes", [2, 4])
def test_every_architecture_outputs_one_probability_per_class(architecture, num_classes):
    spec = ModelSpec(num_classes=num_classes, img_size=64, augment=True)
    model = build_model(architecture, spec)
    x = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 1)).astype("float32")
    probs = model.predict(x, verbose=0)
    assert probs.shape == (3, num_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("architecture", ["adapted_cnn", "mobilenet"])
def test_augmentation_keeps_the_backends_default_compilation(architecture):
    """JAX compiles every training step; augmentation must not turn that off (tests/test_backends.py
    runs this on JAX). TensorFlow stays uncompiled: XLA is slower on the CPU and lacks the ops."""
    model = build_model(architecture, ModelSpec(4, 64, augment=True))
    assert model.jit_compile == (keras.config.backend() == "jax")


def test_seed_layer_settings_are_the_defaults():
    model = build_model("simple_cnn", ModelSpec(num_classes=4, img_size=150))
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [32, 64, 128]
    assert model.get_layer("dense").units == 128
    drop = build_model("dropout_cnn", ModelSpec(num_classes=4, img_size=150))
    assert drop.get_layer("dense").units == 64 and drop.get_layer("dense_dropout").rate == 0.3
    assert drop.get_layer("conv_dropout1").rate == 0.2
    assert build_model("adapted_cnn", ModelSpec(4, 150)).get_layer("dense_dropout").rate == 0.5


def test_preset_hyperparameters_override_defaults_and_typos_are_errors():
    model = build_model("simple_cnn", ModelSpec(3, 64), hyperparameters({"dense_units": 32}))
    assert model.get_layer("dense").units == 32
    with pytest.raises(XrayTrackError, match="no hyper-parameter 'dense_unit'"):
        build_model("simple_cnn", ModelSpec(3, 64), hyperparameters({"dense_unit": 32}))
    with pytest.raises(XrayTrackError, match="unknown architecture"):
        build_model("resnet", ModelSpec(3, 64))


@pytest.mark.parametrize("trainable", [0, 50, BASE_LAYERS])
def test_mobilenet_freezes_all_but_the_last_layers(trainable):
    model = build_model("mobilenet", ModelSpec(4, 64), hyperparameters({"trainable_layers": trainable}))
    base = next(layer for layer in model.layers if layer.name.startswith("mobilenetv2"))
    assert len(base.layers) == BASE_LAYERS
    assert [layer.trainable for layer in base.layers].count(True) == trainable
    assert all(layer.trainable for layer in base.layers[BASE_LAYERS - trainable:])


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(XrayTrackError, match="does not exist"):
        build_model("mobilenet", ModelSpec(4, 64, weights=str(tmp_path / "nope.h5")))


@pytest.mark.skipif(not REAL_WEIGHTS, reason="XRAYTRACK_WEIGHTS not set")
def test_imagenet_weights_load_from_a_file():
    a = build_model("mobilenet", ModelSpec(4, 96, weights=REAL_WEIGHTS))
    b = build_model("mobilenet", ModelSpec(4, 96, weights=REAL_WEIGHTS))
    first_conv = "Conv1"
    wa = a.get_layer("mobilenetv2_1.00_96").get_layer(first_conv).get_weights()[0]
    wb = b.get_layer("mobilenetv2_1.00_96").get_layer(first_conv).get_weights()[0]
    np.testing.assert_array_equal(wa, wb)  # same file, same values: not a random init
