"""Faults a user meets, with real processes on synthetic data, each bounded in time:
SIGKILL and resume, two runs at once, a tracking server down at the start, another store, small
and hostile folders, huge images, names that are not UTF-8 (docs/reliability.md lists what the
user sees; a server lost mid-run is tested in tests/test_tracking_server.py)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
from click.testing import CliRunner
from conftest import class_image, make_dataset
from helpers import interrupted_run, quick_config
from PIL import Image
from servers import mlflow_server, venv_env

from xraytrack.cli import main
from xraytrack.serving.classifier import encode_image
from xraytrack.training import fitting
from xraytrack.training.train import resolve, run_training

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, epochs: int = 40) -> Path:
    """simple_cnn without early stopping, so a run lasts long enough to be killed mid-way."""
    path = tmp_path / "faults.yaml"
    path.write_text(f"architecture: simple_cnn\nimg_size: 32\nbatch_size: 16\nepochs: {epochs}\n"
                    "augment: false\naudit: false\nhyperparameters: {filters: 16}\n")
    return path


def train_cmd(config: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "xraytrack", "train", "--config", str(config), "--data-dir",
            str(data), "--experiment", "faults"]


def start(cmd, tmp_path: Path, name: str, **env) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(cmd, env=venv_env(**env), stdout=log, stderr=subprocess.STDOUT)


def kill_after_two_epochs(proc: subprocess.Popen, ckpt_root: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in ckpt_root.glob("checkpoints/*/backup/training_metadata.json"):
            if json.loads(meta.read_text())["epoch"] >= 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError("no epoch finished in time")


def runs_of(experiment: str = "faults"):
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


@pytest.fixture
def killed(dataset, tmp_path):
    """A training process killed with SIGKILL after two epochs: its run is left RUNNING."""
    mlflow.set_experiment("faults")
    config = write_config(tmp_path)
    proc = start(train_cmd(config, dataset), tmp_path, "killed")
    kill_after_two_epochs(proc, Path(os.environ["XRAYTRACK_CACHE_DIR"]))
    (run,) = runs_of()
    assert run.info.status == "RUNNING"  # what MLflow alone leaves behind
    return config, run


def test_sigkill_then_resume_leaves_no_run_running(killed, dataset, tmp_path):
    config, victim = killed
    done = subprocess.run(train_cmd(config, dataset), env=venv_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Marked run {victim.info.run_id} KILLED" in done.stdout
    statuses = {r.info.run_id: r.info.status for r in runs_of()}
    assert statuses[victim.info.run_id] == "KILLED" and "RUNNING" not in statuses.values()
    assert "process" in mlflow.get_run(victim.info.run_id).data.tags["xraytrack.ended_by"]
    (resumed,) = [r for r in runs_of() if r.info.status == "FINISHED"]
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(resumed.info.run_id, "loss")]
    assert sorted(steps) == list(range(40))  # whole curves: copied epochs plus resumed ones


def no_model_message(run_id: str, tmp_path: Path) -> str:
    out = CliRunner().invoke(main, ["predict", run_id, str(tmp_path), "--out",
                                    str(tmp_path / "p.csv")])
    assert out.exit_code == 1
    return out.output


def test_runs_cleanup_marks_runs_whose_process_is_gone(killed, tmp_path):
    _, victim = killed
    assert "it is RUNNING (or its process died" in no_model_message(victim.info.run_id, tmp_path)
    result = CliRunner().invoke(main, ["runs", "cleanup", "--experiment", "faults"])
    assert result.exit_code == 0, result.output
    assert f"marked KILLED: run {victim.info.run_id}" in result.output
    assert mlflow.get_run(victim.info.run_id).info.status == "KILLED"
    again = CliRunner().invoke(main, ["runs", "cleanup", "--experiment", "faults"])
    assert "no RUNNING run" in again.output
    assert "it ended KILLED before logging it; re-run its command" in no_model_message(
        victim.info.run_id, tmp_path)


def test_a_second_signal_while_the_runs_are_being_marked_killed_is_dropped(monkeypatch):
    """Ctrl-C under `mlflow run`: the terminal's SIGINT reaches the entry point, and `mlflow run`
    sends it SIGTERM a moment later. That second signal, arriving while the runs are being marked
    KILLED, used to cut the marking short: a tune's parent was left FAILED, its trial RUNNING."""
    from xraytrack.tracking import runs

    real_end = runs._end

    def end_as_the_second_signal_arrives(status):
        os.kill(os.getpid(), signal.SIGTERM)
        real_end(status)

    monkeypatch.setattr(runs, "_end", end_as_the_second_signal_arrives)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with runs.tracked_run("signals", "search") as parent:
            with runs.tracked_run("", "trial", parent_run_id=parent.info.run_id):
                os.kill(os.getpid(), signal.SIGTERM)  # the first signal
                time.sleep(30)  # interrupted at once
    ended = mlflow.search_runs(experiment_names=["signals"], output_format="list")
    assert {r.info.run_name: r.info.status for r in ended} == {"search": "KILLED", "trial": "KILLED"}
    assert signal.getsignal(signal.SIGTERM) == before  # and signals count again afterwards
    with pytest.raises(KeyboardInterrupt), runs.tracked_run("signals", "next"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)


def test_two_runs_of_the_same_command_at_once(dataset, tmp_path):
    mlflow.set_experiment("faults")  # create the SQLite store once, not in two processes
    cmd = train_cmd(write_config(tmp_path), dataset)
    first, second = start(cmd, tmp_path, "first"), start(cmd, tmp_path, "second")
    codes = sorted([first.wait(timeout=600), second.wait(timeout=600)])
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("first", "second")]
    assert codes == [0, 1], logs
    refused = next(text for text in logs if "already running" in text)
    assert "Traceback" not in refused and "pid" in refused
    assert [r.info.status for r in runs_of()] == ["FINISHED"]


def test_an_unreachable_tracking_server_fails_in_seconds_without_the_password(dataset, tmp_path):
    started = time.monotonic()
    done = subprocess.run(train_cmd(write_config(tmp_path), dataset), capture_output=True,
                          text=True, timeout=120,
                          env=venv_env(MLFLOW_TRACKING_URI="http://user:s3cret@127.0.0.1:9"))
    assert done.returncode == 1
    assert time.monotonic() - started < 60  # most of it is importing TensorFlow
    assert "cannot reach the tracking server at http://user:***@127.0.0.1:9" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_resumed_equals_uninterrupted(dataset, tmp_path, monkeypatch):
    """Same order, same weights: a run interrupted in epoch 2 and resumed scores exactly as one
    that never stopped."""
    cfg = quick_config(dataset, epochs=4, audit=False)
    interrupted_run(cfg, after_epoch=1)
    resumed_id = run_training(cfg)
    resumed = mlflow.get_run(resumed_id).data.metrics
    monkeypatch.setenv("XRAYTRACK_CACHE_DIR", str(tmp_path / "other-cache"))
    whole_id = run_training(cfg)
    whole = mlflow.get_run(whole_id).data.metrics
    for name in ("test_macro_f1", "test_accuracy", "test_macro_auc", "val_loss"):
        assert resumed[name] == pytest.approx(whole[name], abs=1e-6), name
    client = mlflow.MlflowClient()
    curves = [[m.value for m in sorted(client.get_metric_history(r, "loss"), key=lambda m: m.step)]
              for r in (resumed_id, whole_id)]
    assert curves[0] == pytest.approx(curves[1], abs=1e-6)  # every epoch, not only the last


def test_resuming_against_another_store_starts_afresh_with_a_note(dataset, tmp_path, monkeypatch,
                                                                 capsys):
    cfg = quick_config(dataset, epochs=3, audit=False)
    interrupted_run(cfg, after_epoch=0)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    run = mlflow.get_run(run_training(cfg))
    assert "another tracking store" in capsys.readouterr().out
    assert run.info.status == "FINISHED"
    steps = sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss"))
    assert steps == [0, 1, 2]
    assert not fitting.checkpoint_dir(resolve(cfg)[0]).exists()


def test_data_summary_of_a_small_folder_needs_no_split(tmp_path):
    root = make_dataset(tmp_path / "small", n_per_class=6, classes=("COVID", "Normal"), extras=False)
    (root / "Empty").mkdir()
    Image.fromarray(class_image(0, np.random.default_rng(0))).save(root / "COVID" / "images" / "t.jpg")
    data = (root / "COVID" / "images" / "t.jpg").read_bytes()
    (root / "COVID" / "images" / "t.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (root / "Normal" / "images" / "notes.png").write_text("not an image")
    result = CliRunner().invoke(main, ["data", "summary", str(root), "--img-size", "32"])
    assert result.exit_code == 0, result.output
    assert "COVID" in result.output and "not a class: Empty/" in result.output
    assert "skipped COVID/images/t.jpg" in result.output
    assert "skipped Normal/images/notes.png" in result.output
    assert "Note: only" in result.output and "too few" in result.output


def _huge_png(path: Path) -> Path:
    """13,000 x 13,000 16-bit: a 329 KB file that is 338 MB of pixels."""
    Image.new("I;16", (13_000, 13_000)).save(path, compress_level=1)
    return path


def test_predict_skips_images_above_the_pixel_bound_and_hostile_names(trained, tmp_path):
    from xraytrack.tracking.model_logging import CLASSIFIER
    from xraytrack.tracking.registry import logged_model_uri

    folder = tmp_path / "incoming"
    folder.mkdir()
    good = sorted((trained["data"] / "Normal" / "images").glob("*.png"))[:2]
    for f in good:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(good[0].read_bytes())  # Latin-1 name
    (folder / "gone.png").symlink_to(folder / "missing.png")
    (folder / "folder.png").mkdir()
    Image.fromarray(np.zeros((1200, 1200), np.uint8)).save(folder / "big.png")
    out = tmp_path / "p.csv"
    uri = logged_model_uri(mlflow.get_run(trained["run_id"]), CLASSIFIER)
    done = subprocess.run([sys.executable, "-m", "xraytrack", "predict", uri, str(folder),
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env=venv_env(XRAYTRACK_MAX_IMAGE_PIXELS="1000000"))
    assert done.returncode == 0, done.stderr[-2000:]
    frame = pd.read_csv(out)
    assert sorted(Path(p).name for p in frame["path"]) == sorted(f.name for f in good)
    for reason in ("caf\\xe9.png: its name is not valid UTF-8", "gone.png: a symbolic link",
                   "folder.png: a folder", "big.png: ImageTooLarge: 1200x1200 pixels"):
        assert reason in done.stderr, reason


def test_a_huge_image_is_refused_by_the_server_without_the_memory(trained, tmp_path):
    from xraytrack.tracking.model_logging import CLASSIFIER
    from xraytrack.tracking.registry import logged_model_uri

    uri = logged_model_uri(mlflow.get_run(trained["run_id"]), CLASSIFIER)
    huge = encode_image(_huge_png(tmp_path / "huge.png").read_bytes())
    good = encode_image(sorted((trained["data"] / "COVID" / "images").glob("*.png"))[0].read_bytes())
    args = ["models", "serve", "-m", uri, "--env-manager", "local", "--host", "127.0.0.1"]
    with mlflow_server(args, "/ping", log_dir=tmp_path) as base:
        from test_serving import post

        port = base.rsplit(":", 1)[1]
        server = next(p for p in psutil.process_iter(["cmdline"])
                      if "serve" in (p.info["cmdline"] or []) and port in (p.info["cmdline"] or []))
        family = [server, *server.children(recursive=True)]

        def resident() -> int:
            return sum(p.memory_info().rss for p in family if p.is_running())

        assert post(base, {"dataframe_split": {"columns": ["image"], "data": [[good]]}})[0] == 200
        idle, peak, answer = resident(), [0], {}
        request = threading.Thread(target=lambda: answer.update(result=post(base, {
            "dataframe_split": {"columns": ["image"], "data": [[huge]]}})))
        request.start()
        while request.is_alive():  # sample the server's memory while it handles the request
            peak[0] = max(peak[0], resident())
            time.sleep(0.02)
        status, out = answer["result"]
        assert status == 400 and "above the limit" in out["message"]
        assert peak[0] - idle < 1 << 30
        number = {"dataframe_split": {"columns": ["image"], "data": [[5]]}}
        status, out = post(base, number)
        assert status == 400 and "got int" in out["message"]
        assert post(base, {"dataframe_split": {"columns": ["image"], "data": [[good]]}})[0] == 200
