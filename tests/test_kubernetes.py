"""MLflow Projects on Kubernetes: the image, the job manifests and the serving image.

No Docker engine and no cluster are reachable here, so these tests run everything up to them:
MLflow's own ``--backend kubernetes`` code loads ``kubernetes/``, builds the image's context and
renders the Job, with only the Docker engine and the Kubernetes API answered by fakes; the Job is
checked field by field against the Kubernetes API's own models (the ``kubernetes`` client), and
its container command is then run here, with the image's folder mapped onto this checkout, until
the MLflow run that ``mlflow run`` made is FINISHED.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import kubernetes.client
import mlflow
import pytest
import yaml
from mlflow.projects._project_spec import load_project

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "kubernetes"
IMAGE_HOME = "/opt/xraytrack"  # the Dockerfile's WORKDIR


# --- the Kubernetes API's own models, used as a schema --------------------------------------

def check_object(data: dict, model: str, where: str) -> None:
    """Every key of ``data`` is a field of the API model ``model``, with a value of its type."""
    cls = getattr(kubernetes.client, model)
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    assert isinstance(data, dict), f"{where}: expected an object ({model})"
    for key, value in data.items():
        assert key in fields, f"{where}.{key} is not a field of {model}"
        check_value(value, cls.openapi_types[fields[key]], f"{where}.{key}")


def check_value(value, kind: str, where: str) -> None:
    """``kind`` as the client spells it: ``List[X]``, ``Dict[str, X]``, a scalar or a model."""
    if container := re.fullmatch(r"(?:List\[|list\[)(.*)\]", kind):
        assert isinstance(value, list), f"{where}: expected a list"
        for i, item in enumerate(value):
            check_value(item, container.group(1), f"{where}[{i}]")
    elif container := re.fullmatch(r"(?:Dict\[|dict\()str, (.*)[\])]", kind):
        assert isinstance(value, dict), f"{where}: expected a map"
        for key, item in value.items():
            check_value(item, container.group(1), f"{where}.{key}")
    elif kind in ("str", "int", "bool", "float"):
        assert type(value).__name__ == kind, f"{where}: {value!r} is not a {kind}"
    elif kind != "object":
        check_object(value, kind, where)


def check_manifest(doc: dict, where: str) -> None:
    """A whole object: known kind, known fields, and the API's required fields present."""
    model = f"V1{doc['kind']}"
    check_object(doc, model, where)
    # The client's deserializer builds the typed objects and raises on a missing required field.
    api = kubernetes.client.ApiClient()
    api._ApiClient__deserialize(doc, model)


def test_the_cluster_manifests_are_valid_kubernetes_objects():
    for name in ("job-template.yaml", "resources.yaml"):
        for i, doc in enumerate(yaml.safe_load_all((CLUSTER / name).read_text())):
            check_manifest(doc, f"{name}[{i}]")
    with pytest.raises(AssertionError, match="resources.limit is not a field"):
        check_manifest({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
                        "spec": {"template": {"spec": {"containers": [
                            {"name": "c", "resources": {"limit": {}}}]}}}}, "typo")


def test_the_job_mounts_what_the_image_and_entry_points_expect():
    job = yaml.safe_load((CLUSTER / "job-template.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True
    assert re.search(r"XRAYTRACK_CACHE_DIR=/cache\b", _dockerfile_text())
    assert "/cache" in mounts and not mounts["/cache"].get("readOnly")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    made = {d["metadata"]["name"] for d in yaml.safe_load_all((CLUSTER / "resources.yaml").read_text())
            if d["kind"] == "PersistentVolumeClaim"}
    assert claims == made
    assert job["metadata"]["namespace"] == "xraytrack"  # MLflow reads it; resources.yaml makes it
    assert pod["securityContext"]["runAsUser"] == 1000 and "USER 1000" in _dockerfile_text()


# --- the image --------------------------------------------------------------------------------

def _dockerfile_text() -> str:
    return (REPO / "Dockerfile").read_text()


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", _dockerfile_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def readme_install_step() -> str:
    """The README's install command, without its comment."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    line = next(line for line in block.splitlines() if "# install" in line)
    return line.split("#", 1)[0].strip()


def test_the_image_installs_as_the_readme_says():
    steps = dockerfile()
    runs = [args for op, args in steps if op == "RUN"]
    assert readme_install_step() in runs
    assert dict(steps)["WORKDIR"] == IMAGE_HOME
    python = re.match(r"python:(\d+\.\d+)", dict(steps)["FROM"]).group(1)
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())["dependencies"]
    assert f"python={python}" in conda


def test_what_the_image_copies_is_a_complete_package(tmp_path):
    """The COPY steps, replayed into a folder (minus what .dockerignore drops), build the wheel."""
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    context = tmp_path / "image"
    for op, args in dockerfile():
        if op != "COPY":
            continue
        *sources, dest = args.split()
        for source in sources:
            assert f"!{source}" in ignored, f".dockerignore drops {source}"
            target = context / (source if dest == "./" else dest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / source, target)
    # The project's build backend (pyproject's build-system), called as pip would call it.
    build = "import sys, setuptools.build_meta as b; b.build_wheel(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", build, str(tmp_path / "wheel")], cwd=context,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("xraytrack-*.whl")
    packaged = {Path(n).parent.as_posix() for n in zipfile.ZipFile(wheel).namelist()}
    local = {p.parent.relative_to(REPO).as_posix() for p in (REPO / "xraytrack").rglob("*.py")}
    assert local <= packaged
    # Every experiment file the cluster's entry points name is in the image.
    cluster = (CLUSTER / "MLproject").read_text()
    for path in re.findall(rf"{IMAGE_HOME}/(experiments/[\w{{}}]+\.yaml)", cluster):
        if "{" not in path:
            assert (context / path).is_file(), path


# --- the cluster's MLproject --------------------------------------------------------------------

def test_the_cluster_project_is_the_root_project_in_the_image():
    done = subprocess.run([sys.executable, str(REPO / "deploy" / "kubernetes_project.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    root, cluster = load_project(str(REPO)), load_project(str(CLUSTER))
    assert cluster.docker_env["image"] == "xraytrack" and cluster.env_type == "docker_env"
    assert set(cluster._entry_points) == set(root._entry_points)
    for name, entry in root._entry_points.items():
        assert set(cluster._entry_points[name].parameters) == set(entry.parameters), name


def test_quoted_arguments_reach_the_cli_as_a_shell_would_pass_them():
    from mlflow.projects.kubernetes import _get_run_command

    from xraytrack.quoted_cli import unquote

    command = _get_run_command(["python -m x --data-dir '/data/my scans' --seeds '' --epochs 2"])
    assert command[4:] == ["'/data/my scans'", "--seeds", "''", "--epochs", "2"]  # MLflow's doing
    assert unquote(command[3:]) == ["--data-dir", "/data/my scans", "--seeds", "", "--epochs", "2"]


class FakeDocker:
    """The Docker engine's client as MLflow uses it: build (context kept), push, registry digest."""

    built: dict = {}

    def __init__(self, *args, **kwargs):
        self.images = self

    def build(self, tag, fileobj, dockerfile, **kwargs):
        with tarfile.open(fileobj=io.BytesIO(fileobj.read()), mode="r:gz") as tar:
            FakeDocker.built = {"tag": tag, "names": tar.getnames(),
                                "dockerfile": tar.extractfile(dockerfile).read().decode()}
        return type("Image", (), {"tags": [tag], "id": "sha256:" + "1" * 64})(), []

    def push(self, repository, stream, decode):
        return iter([{"status": "Pushed"}])

    def get_registry_data(self, tag):
        return type("RegistryData", (), {"id": "sha256:" + "2" * 64})()


class FakeBatchApi:
    """The Kubernetes API's one call MLflow makes to start a run."""

    jobs: list = []

    def create_namespaced_job(self, namespace, body, pretty):
        FakeBatchApi.jobs.append((namespace, json.loads(json.dumps(body))))


def submit(monkeypatch, entry_point: str, parameters: dict):
    """``mlflow run kubernetes --backend kubernetes --build-image`` from the repository root, the
    engine faked."""
    import docker
    import kubernetes.config
    import mlflow.projects.docker as mlflow_docker

    monkeypatch.setattr(docker, "from_env", FakeDocker)
    monkeypatch.setattr(mlflow_docker, "validate_docker_installation", lambda: None)
    monkeypatch.setattr(kubernetes.config, "load_kube_config", lambda context=None: None)
    monkeypatch.setattr(kubernetes.client, "BatchV1Api", FakeBatchApi)
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])
    FakeBatchApi.jobs.clear()
    monkeypatch.chdir(REPO)  # backend-config.json names the template from the repository root
    submitted = mlflow.projects.run(
        str(CLUSTER), entry_point=entry_point, parameters=parameters, backend="kubernetes",
        backend_config=str(CLUSTER / "backend-config.json"), experiment_name="cluster",
        synchronous=False, build_image=True)
    (job,) = FakeBatchApi.jobs
    return submitted, job


@pytest.mark.slow
def test_mlflow_run_on_kubernetes_submits_a_job_that_trains_into_its_run(monkeypatch, dataset,
                                                                        tmp_path):
    submitted, (namespace, job) = submit(monkeypatch, "simple_cnn", {
        "data_dir": str(dataset), "epochs": "1", "img_size": "32", "limit_per_class": "20"})

    # What MLflow built: our image plus the cluster project, tagged under the repository URI.
    assert FakeDocker.built["dockerfile"].startswith("FROM xraytrack\n")
    assert any(name.endswith("/MLproject") for name in FakeDocker.built["names"])
    assert FakeDocker.built["tag"].startswith("registry.example.org/xraytrack/runs")
    # What it submitted: a valid Job running the entry point in the run mlflow made.
    check_manifest(job, "submitted job")
    assert namespace == "xraytrack"
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_RUN_ID"] == submitted.run_id
    assert container["command"][:4] == ["python", "-m", "xraytrack.quoted_cli", "train"]

    # The pod, here: the image's folder is this checkout, the run's cache a temporary folder.
    command = [sys.executable] + [arg.replace(IMAGE_HOME, str(REPO))
                                  for arg in container["command"][1:]]
    pod_env = os.environ | env | {"XRAYTRACK_CACHE_DIR": str(tmp_path / "cache")}
    workdir = tmp_path / "mlflow-projects-code"  # MLflow's WORKDIR: the copied project folder
    shutil.copytree(CLUSTER, workdir)
    done = subprocess.run(command, cwd=workdir, env=pod_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = mlflow.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.backend"] == "kubernetes"
    assert run.data.params["cfg.epochs"] == "1" and run.data.params["cfg.batch_size"] == "32"
    assert "test_macro_f1" in run.data.metrics
    assert len(mlflow.search_runs(experiment_names=["cluster"], output_format="list")) == 1


# --- the serving image ------------------------------------------------------------------------

def test_the_serving_image_is_generated_from_a_logged_classifier(trained, tmp_path):
    """`mlflow models generate-dockerfile` writes what `build-docker` builds: our model's code
    and requirements go in, and it serves the pyfunc on port 8080."""
    out = tmp_path / "serving-image"
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m",
         f"runs:/{trained['run_id']}/classifier", "-d", str(out), "--env-manager", "local"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)  # the model's Python, from its MLmodel
    assert "COPY model_dir/classifier /opt/ml/model" in text
    assert "env_manager='local'" in text  # its requirements go into the image's own Python
    model = out / "model_dir" / "classifier"
    assert (model / "code" / "xraytrack" / "serving" / "served_model.py").is_file()
    requirements = (model / "requirements.txt").read_text()
    assert re.search(r"^tensorflow==", requirements, re.M) and "mlflow" in requirements
