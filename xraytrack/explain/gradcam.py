"""Grad-CAM heatmaps for xraytrack's models, on any Keras backend.

The heatmap is the ReLU of the channel sum of gradient x activation over the last convolutional
feature maps: the HiResCAM form of Grad-CAM (Draelos & Carin 2020; Selvaraju et al. 2017).
For a model that ends in global average pooling (MobileNetV2) it is exactly Grad-CAM, since the
gradient is then the same at every position; for the seed's CNNs, whose Flatten + Dense head
weighs every position separately, Grad-CAM's spatially averaged gradients blur the map to
near-uniform, while the element-wise product still shows where the evidence is.
Keras 3 has no backend-neutral gradient call, so the one gradient is taken with the active
backend's own autodiff (TensorFlow, JAX or PyTorch).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def split_at_last_conv(model: keras.Model) -> tuple[keras.Model, list]:
    """(features, head): the model up to its last convolutional output, and the layers after.

    Every xraytrack model is a chain at its top level; MobileNetV2's whole base counts as the
    convolutional layer (its output is the last feature map).
    """
    layers = model.layers
    last = max(i for i, layer in enumerate(layers)
               if isinstance(layer, (keras.layers.Conv2D, keras.Model)))
    # The next layer's input is the feature map as a tensor of *this* model's graph (a nested
    # model's own `.output` belongs to its inner graph).
    features = keras.Model(model.inputs, layers[last + 1].input)
    return features, layers[last + 1:]


def input_window(model: keras.Model) -> tuple[float, float, float, float]:
    """(top, bottom, left, right) of the input, in pixels, that the last feature map covers.

    A model with a ``border_crop`` or ``lung_crop`` strategy crops the image before its first
    convolution, so its feature map spans only that window: a heatmap stretched over the whole
    image would point beside the evidence (and the audit would weigh it against the wrong lung
    pixels). Follows the crops ahead of the features, each in the frame of the layer before."""
    height, width = model.inputs[0].shape[1:3]
    top, bottom, left, right = 0.0, float(height), 0.0, float(width)
    features, _ = split_at_last_conv(model)
    for layer in features.layers:
        if isinstance(layer, keras.layers.CenterCrop):
            h, w = layer.input.shape[1:3]
            offsets = ((h - layer.height) // 2, h - layer.height - (h - layer.height) // 2,
                       (w - layer.width) // 2, w - layer.width - (w - layer.width) // 2)
        elif isinstance(layer, keras.layers.Cropping2D):
            h, w = layer.input.shape[1:3]
            (a, b), (c, d) = layer.cropping
            offsets = (a, b, c, d)
        else:
            continue
        dy, dx = (bottom - top) / h, (right - left) / w
        top, bottom = top + offsets[0] * dy, bottom - offsets[1] * dy
        left, right = left + offsets[2] * dx, right - offsets[3] * dx
    return top, bottom, left, right


def _in_input_frame(cams: np.ndarray, window, size) -> np.ndarray:
    """Feature-map heatmaps (N, h, w) placed over the input window they cover, 0 elsewhere."""
    top, bottom, left, right = (round(v) for v in window)
    inner = ops.image.resize(cams[..., None], (bottom - top, right - left), interpolation="bilinear")
    out = np.zeros((len(cams), *size), dtype="float32")
    out[:, top:bottom, left:right] = ops.convert_to_numpy(inner)[..., 0]
    return out


def _apply(head, x, logits: bool = False):
    """Run the head; with ``logits`` the softmax layer returns class scores for Grad-CAM: each
    logit minus their mean. Raw logits are what Grad-CAM prescribes (softmax gradients vanish
    when the model is confident), and centring them removes the shift softmax ignores, which
    otherwise lets one class of a two-class model carry all the evidence and the other none."""
    for i, layer in enumerate(head):
        if logits and i == len(head) - 1:
            z = ops.matmul(x, layer.kernel) + layer.bias
            return z - ops.mean(z, axis=-1, keepdims=True)
        x = layer(x, training=False) if isinstance(layer, keras.layers.Dropout) else layer(x)
    return x


def _score_gradients(head, maps, classes):
    """d(class logit)/d(maps) with the backend's autodiff; maps: (N, h, w, c)."""
    backend = keras.config.backend()
    one_hot = ops.one_hot(ops.convert_to_tensor(classes), _apply(head, maps[:1]).shape[-1])
    if backend == "tensorflow":
        import tensorflow as tf

        maps = tf.convert_to_tensor(maps)
        with tf.GradientTape() as tape:
            tape.watch(maps)
            score = tf.reduce_sum(_apply(head, maps, logits=True) * one_hot)
        return tape.gradient(score, maps)
    if backend == "jax":
        import jax

        return jax.grad(lambda m: (_apply(head, m, logits=True) * one_hot).sum())(maps)
    if backend == "torch":
        maps = maps.detach().requires_grad_(True)
        (_apply(head, maps, logits=True) * one_hot).sum().backward()
        return maps.grad
    raise NotImplementedError(f"Grad-CAM needs gradients; backend {backend!r} is not supported")


def gradcam(model: keras.Model, images: np.ndarray, classes=None, batch_size: int = 16):
    """Heatmaps in [0, 1] at the images' size, for `classes` (default: the predicted ones); 0
    on the pixels that the model's own crop never shows it.

    images: (N, H, W, 1) raw 0-255 pixels, as the model takes them. Returns (heatmaps, probs).
    """
    features, head = split_at_last_conv(model)
    heatmaps, all_probs = [], []
    for start in range(0, len(images), batch_size):
        batch = ops.convert_to_tensor(images[start:start + batch_size].astype("float32"))
        maps = features(batch, training=False)
        probs = ops.convert_to_numpy(_apply(head, maps))
        target = probs.argmax(axis=1) if classes is None else np.asarray(classes)[start:start + len(probs)]
        grads = _score_gradients(head, maps, target)
        cam = ops.convert_to_numpy(ops.relu(ops.sum(grads * maps, axis=-1)))
        heatmaps.append(cam)
        all_probs.append(probs)
    resized = _in_input_frame(np.concatenate(heatmaps), input_window(model), images.shape[1:3])
    peak = resized.reshape(len(resized), -1).max(axis=1)[:, None, None]
    return np.divide(resized, peak, out=np.zeros_like(resized), where=peak > 0), np.concatenate(all_probs)


def lung_share(heatmaps: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Fraction of each heatmap's mass that falls inside its lung region (NaN for an empty map)."""
    total = heatmaps.reshape(len(heatmaps), -1).sum(axis=1)
    inside = (heatmaps * regions).reshape(len(heatmaps), -1).sum(axis=1)
    return np.divide(inside, total, out=np.full(len(total), np.nan), where=total > 0)
