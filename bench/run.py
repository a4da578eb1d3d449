"""Run every benchmark, print the tables and write docs/benchmarks.md.

    python bench/run.py [--quick]

Needs the real data (XRAYTRACK_DATA_DIR, default ../shared/data/COVID-19_Radiography_Dataset)
and MobileNetV2's weights (XRAYTRACK_WEIGHTS, default ../shared/weights/...); the scale section
also a PostgreSQL role as XRAYTRACK_POSTGRES_URI (deploy/local-postgres.sh). Each case runs in a
process of its own (bench/cases.py), so every row has its own peak memory. Speed goals are
ratios measured side by side in this one run: the machines are shared and absolute times drift.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ARCHITECTURES = ("simple_cnn", "dropout_cnn", "adapted_cnn", "mobilenet")


def cases(quick: bool):
    yield "pipeline", [("pipeline_cached", s) for s in ("150", "224")]
    yield "pipeline", [("pipeline_seed", s) for s in ("150", "224")]
    yield "pipeline", [("pipeline_keras_dir", s) for s in ("150", "224")]
    steps = "5" if quick else "20"
    yield "training", [("train_step", a, j, steps) for a in ARCHITECTURES for j in ("off", "xla")]
    n = "400" if quick else "2000"
    yield "epoch", [("epoch_project", n), ("epoch_seed", n)]
    yield "inference", [("matmul_peak",), ("inference", "simple_cnn"), ("inference", "mobilenet")]
    yield "mlflow", [("mlflow_overhead", "tracked"), ("mlflow_overhead", "untracked")]
    yield "serving", [("serving.py", "prepare")] + [
        ("serving.py", "in_process", w) for w in ("keras", "onnx", "onnx_runtime")] + [
        ("serving.py", "http", w) for w in ("keras", "onnx")] + [
        ("serving.py", "environment", w) for w in ("keras", "onnx")]
    yield "scale", [("scale.py", "overhead", "3"), ("scale.py", "tune", "1")]


def run_case(args, env: dict | None = None) -> list[dict]:
    """One case in its own process: ``bench/cases.py`` unless the first argument names a script."""
    script, args = (args[0], args[1:]) if args[0].endswith(".py") else ("cases.py", args)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path} | (env or {})
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], env=env,
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"bench case {args} failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, no GPU; Python {platform.python_version()}, "
            f"TensorFlow {version('tensorflow')}, Keras {version('keras')}, MLflow {version('mlflow')}, "
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps and images (a smoke run)")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--only", help="run one group (e.g. serving) and replace only its section "
                        "of --out, which keeps the other sections and their own dates")
    args = parser.parse_args()
    os.environ.setdefault("XRAYTRACK_DATA_DIR", str(SHARED / "data" / "COVID-19_Radiography_Dataset"))
    os.environ.setdefault("XRAYTRACK_WEIGHTS", str(
        SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"))
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    started = time.time()
    results: dict[str, list[dict]] = {}
    for group, group_cases in cases(args.quick):
        if args.only and group != args.only:
            continue
        for case in group_cases:
            print(f"... {' '.join(case)}", flush=True)
            results.setdefault(group, []).extend(run_case(case))
    from report import render, replace_section  # bench/report.py: the tables and what they say

    command = " ".join(["python", "bench/run.py", *sys.argv[1:]])
    if args.only:
        text = replace_section(Path(args.out).read_text(), args.only, results[args.only], machine(),
                               command, time.time() - started, str(date.today()))
    else:
        text = render(results, machine(), command, time.time() - started, str(date.today()))
    Path(args.out).write_text(text)
    # every row as measured, beside the page, so a table can be re-read without re-running
    rows_file = Path(args.out).with_suffix(".json")
    saved = json.loads(rows_file.read_text()) if args.only and rows_file.exists() else {}
    rows_file.write_text(json.dumps(saved | results, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
