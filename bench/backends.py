"""Does the model code train and explain on every Keras backend and device, and how fast?

    python bench/backends.py [--backends tensorflow,jax,torch] [--out docs/backends.md]

xraytrack's models, augmentation and Grad-CAM are written against Keras 3 alone, so they should
run wherever Keras does: on a GPU machine with JAX or PyTorch and no TensorFlow, say. This runs,
for each backend that is installed, a few training steps of every architecture (and MobileNetV2 at
224 px, the size a GPU makes affordable), Grad-CAM on 32 images, and records the system tags a run
there would get. JAX trains through XLA, its normal mode; TensorFlow and torch run as `train` runs
them. Needs MobileNetV2's weights (XRAYTRACK_WEIGHTS); synthetic images, so no data.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from datetime import date
from pathlib import Path

from report import table
from run import REPO, SHARED, run_case

JIT = {"tensorflow": "off", "jax": "xla", "torch": "off"}
MODELS = [("simple_cnn", "150"), ("dropout_cnn", "150"), ("adapted_cnn", "150"),
          ("mobilenet", "160"), ("mobilenet", "224")]
TRAIN_IMAGES = 10252  # the shared data's training split


def measure(backend: str, steps: str) -> tuple[dict, list[dict]]:
    env = {"KERAS_BACKEND": backend}
    tags = run_case(("system_tags",), env)[0]
    rows = []
    for architecture, size in MODELS:
        print(f"... {backend} {architecture} {size}px", flush=True)
        train = run_case(("train_step", architecture, JIT[backend], steps, size), env)[0]
        explain = run_case(("explain_step", architecture, size), env)[0]
        rows.append({"architecture": architecture, "px": size,
                     "train images/s": train["images_per_s"],
                     "epoch s (10,252 images)": TRAIN_IMAGES / train["images_per_s"],
                     "first step s": train["first_step_s"],
                     "Grad-CAM ms/image": explain["ms_per_image"],
                     "heatmaps valid": explain["heatmaps_valid"]})
        print(rows[-1], flush=True)
    return tags, rows


def render(results: dict, command: str, seconds: float) -> str:
    out = ["# Keras backends and devices", "",
           f"Written by `{command}` on {date.today()} in {seconds / 60:.1f} min. Synthetic 32-image "
           "batches, so these are throughput and correctness checks, not accuracy. Training "
           "images/s is the steady state of `train_on_batch` (batch 32, the default); "
           "`epoch s` scales it to the shared data's training split.", ""]
    for backend, (tags, rows) in results.items():
        out += [f"## {backend}", ""]
        out += [f"- `{k}`: {v}" for k, v in tags.items() if k.startswith("sys.")]
        out += ["", table(rows, list(rows[0])), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--steps", default="20", help="timed training steps per model")
    parser.add_argument("--out", default=str(REPO / "docs" / "backends.md"))
    args = parser.parse_args()
    os.environ.setdefault("XRAYTRACK_WEIGHTS", str(
        SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"))
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    started, results = time.time(), {}
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            print(f"skipping backend {backend}: not installed", file=sys.stderr)
            continue
        results[backend] = measure(backend, args.steps)
    text = render(results, " ".join(["python", "bench/backends.py", *sys.argv[1:]]), time.time() - started)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
