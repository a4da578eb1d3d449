"""The shared tracking server of docs/scale.md, for real: deploy/tracking-server.sh on 127.0.0.1
with a PostgreSQL backend store, proxied artifacts and MLflow's basic auth. Every xraytrack
command here is a separate process that knows only MLFLOW_TRACKING_URI and its credentials.

Needs a PostgreSQL role that may create databases, as XRAYTRACK_POSTGRES_URI (a SQLAlchemy URI;
deploy/local-postgres.sh makes one, as .ci/run does). Each module run gets a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from servers import SharedServer, connect, free_port, mlflow_server, postgres_database, venv_env

from xraytrack.serving.classifier import encode_image

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("XRAYTRACK_POSTGRES_URI")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The shared server on a fresh PostgreSQL database, with users trainer and viewer."""
    if not POSTGRES:
        if os.environ.get("XRAYTRACK_REQUIRE_POSTGRES"):
            pytest.fail("XRAYTRACK_REQUIRE_POSTGRES is set but XRAYTRACK_POSTGRES_URI is not")
        pytest.skip("XRAYTRACK_POSTGRES_URI is unset (deploy/local-postgres.sh prints one)")
    with postgres_database(POSTGRES) as database:
        shared = SharedServer(database, tmp_path_factory.mktemp("server"))
        shared.start()
        try:
            shared.add_users()
            yield shared
        finally:
            shared.stop()


def xraytrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "xraytrack", *args]


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=venv_env(**env), stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def team(server, tmp_path_factory):
    """What a team does at once: two trainings (one the README's `mlflow run` command) and a tune
    with a chief and two workers, five processes logging to the server as `trainer`."""
    from conftest import make_dataset

    root = tmp_path_factory.mktemp("team")
    data = make_dataset(root / "data", n_per_class=24)
    base_env = server.client_env("trainer") | {"XRAYTRACK_CACHE_DIR": str(root / "cache")}
    train = xraytrack("train", "--config", str(REPO / "experiments" / "simple_cnn.yaml"),
                      "--data-dir", str(data), "--img-size", "32", "--epochs", "2",
                      "--audit", "false", "--experiment", "team")
    tune = xraytrack("tune", "--config", str(REPO / "experiments" / "simple_cnn.yaml"),
                     "--data-dir", str(data), "--img-size", "32", "--epochs", "1",
                     "--tuner", "random", "--max-trials", "2", "--experiment", "team-tune")
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    # The README's main command as it is, into the Default experiment where `mlflow run` logs
    readme = ["mlflow", "run", str(REPO), "-e", "simple_cnn", "--env-manager", "local",
              "-P", f"data_dir={data}", "-P", "img_size=32", "-P", "epochs=2", "-P", "audit=false",
              "-P", "seed=2"]
    jobs = {"train-1": (train + ["--seed", "1"], base_env), "mlflow-run": (readme, base_env)}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        jobs[tuner_id] = (tune, base_env | oracle | {"KERASTUNER_TUNER_ID": tuner_id})
    procs = {name: start(cmd, root / f"{name}.log", env) for name, (cmd, env) in jobs.items()}
    try:
        for name, proc in procs.items():
            assert proc.wait(timeout=900) == 0, (root / f"{name}.log").read_text()[-3000:]
    finally:
        for proc in procs.values():
            proc.kill()
    return {"root": root, "data": data}


def test_requests_without_the_right_credentials_get_401(server):
    search = f"{server.base}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=("trainer", "wrong"), timeout=10).status_code == 401
    assert requests.get(search, auth=("viewer", server.passwords["viewer"]), timeout=10).status_code == 200


def test_two_trainings_and_a_distributed_tune_finish_in_postgres_with_proxied_artifacts(
        server, team, monkeypatch):
    client = server.client("viewer", monkeypatch)  # reading needs no more than READ
    team_id = client.get_experiment_by_name("team").experiment_id
    tune_id = client.get_experiment_by_name("team-tune").experiment_id
    (readme,) = client.search_runs(["0"])  # the Default experiment
    assert readme.data.tags["mlflow.project.entryPoint"] == "simple_cnn"
    trainings = client.search_runs([team_id]) + [readme]
    assert sorted(r.data.params["cfg.seed"] for r in trainings) == ["1", "2"]
    tuned = client.search_runs([tune_id])
    (search,) = [r for r in tuned if r.data.tags.get("xraytrack.role") == "search"]
    trials = [r for r in tuned if r.data.tags.get("xraytrack.role") == "trial"]
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {search.info.run_id}
    assert sorted(t.data.tags["xraytrack.tuner_id"] for t in trials) == ["tuner0", "tuner1"]
    assert "test_macro_f1" in search.data.metrics  # the chief retrained the best trial
    for run in trainings + tuned:
        assert run.info.status == "FINISHED", run.info
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri

    with connect(server.database) as conn:  # the rows are PostgreSQL's, not a local file's
        rows = conn.execute("SELECT e.name, r.status, count(*) FROM runs r JOIN experiments e "
                            "USING (experiment_id) GROUP BY e.name, r.status").fetchall()
    assert {(name, status) for name, status, _ in rows} == {
        ("team", "FINISHED"), ("team-tune", "FINISHED"), ("Default", "FINISHED")}
    assert sum(n for name, _, n in rows if name != "team-tune") == 2

    # Artifacts went through the server into its destination, none into the clients' folders.
    run = trainings[0]
    stored = server.artifacts / team_id / run.info.run_id / "artifacts"
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert listed and listed <= {p.name for p in stored.iterdir()}
    assert list((server.artifacts / team_id).rglob("MLmodel"))
    assert not list(team["root"].rglob("mlruns")) and not list(team["root"].rglob("*.db"))


def test_register_predict_and_serve_from_the_registry_a_viewer_cannot_register(
        server, team, monkeypatch, tmp_path):
    registered = subprocess.run(xraytrack("register", "--experiment", "team"), capture_output=True,
                                text=True, timeout=300, env=venv_env(**server.client_env("trainer")))
    assert registered.returncode == 0, registered.stderr[-3000:]
    client = server.client("viewer", monkeypatch)
    champion = client.get_model_version_by_alias("xraytrack-cxr", "champion")

    refused = subprocess.run(xraytrack("register", "--experiment", "team", "--alias", "mine"),
                             capture_output=True, text=True, timeout=300,
                             env=venv_env(**server.client_env("viewer")))
    assert refused.returncode == 1 and "Permission denied" in refused.stderr, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert [v.version for v in client.search_model_versions("name = 'xraytrack-cxr'")] == [
        champion.version]

    # The viewer reads the model back through the artifact proxy: predict and a scoring server.
    images = sorted((team["data"] / "Normal" / "images").glob("*.png"))[:3]
    out = tmp_path / "predictions.csv"
    predicted = subprocess.run(
        xraytrack("predict", "models:/xraytrack-cxr@champion", *map(str, images), "--out", str(out)),
        capture_output=True, text=True, timeout=300, env=venv_env(**server.client_env("viewer")))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    rows = pd.read_csv(out)
    assert len(rows) == 3 and rows["label"].notna().all()

    serve = ["models", "serve", "-m", "models:/xraytrack-cxr@champion", "--env-manager", "local",
             "--host", "127.0.0.1"]
    with mlflow_server(serve, "/ping", log_dir=tmp_path, env=server.client_env("viewer")) as url:
        first = encode_image(images[0].read_bytes())
        body = {"dataframe_split": {"columns": ["image"], "data": [[first]]}}
        answer = requests.post(url + "/invocations", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] == rows["label"][0]


def test_the_server_lost_mid_run_ends_in_one_line_and_the_run_resumes(server, dataset, tmp_path,
                                                                      monkeypatch):
    """Stopped after two epochs: the command ends by itself with one line; with the server back,
    the same command resumes from its checkpoint and nothing is left RUNNING."""
    config = tmp_path / "long.yaml"
    config.write_text("architecture: simple_cnn\nimg_size: 32\nbatch_size: 16\nepochs: 8\n"
                      "augment: false\naudit: false\nhyperparameters: {filters: 16}\n")
    cmd = xraytrack("train", "--config", str(config), "--data-dir", str(dataset),
                    "--experiment", "outage")
    env = server.client_env("trainer")
    proc = start(cmd, tmp_path / "lost.log", env)
    checkpoints = Path(os.environ["XRAYTRACK_CACHE_DIR"]).glob
    deadline = time.monotonic() + 300
    while not any(json.loads(m.read_text())["epoch"] >= 2
                  for m in checkpoints("checkpoints/*/backup/training_metadata.json")):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "lost.log").read_text()
        time.sleep(0.2)
    server.stop()
    try:
        lost_at = time.monotonic()
        code = proc.wait(timeout=300)
        log = (tmp_path / "lost.log").read_text()
        assert code == 1 and time.monotonic() - lost_at < 120, log[-3000:]
        assert f"lost the tracking store at {server.base}" in log and "Traceback" not in log
        assert server.passwords["trainer"] not in log
    finally:
        server.start()
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=venv_env(**env))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client = server.client("viewer", monkeypatch)
    runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    (done,) = [r for r in runs if r.info.status == "FINISHED"]
    steps = sorted(m.step for m in client.get_metric_history(done.info.run_id, "loss"))
    assert steps == list(range(8))
