"""The project files agree with each other: dependencies, entry points, experiment files."""

import re
import tomllib
from pathlib import Path

import yaml

from xraytrack.config import load_config
from xraytrack.models import ARCHITECTURES

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()


def test_conda_yaml_and_pyproject_name_the_same_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())["dependencies"]
    pip = next(d["pip"] for d in conda if isinstance(d, dict))
    assert sorted(project) == sorted(pip)


def test_every_entry_point_calls_the_cli_with_an_existing_experiment_file():
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    for name in ("simple_cnn", "dropout_cnn", "adapted_cnn", "mobilenet", "binary"):
        entry = spec["entry_points"][name]
        config = re.search(r"--config (\S+)", entry["command"]).group(1)
        cfg = load_config(REPO / config)
        assert cfg.architecture in ARCHITECTURES
        for param in ("data_dir", "epochs", "batch_size", "img_size", "learning_rate", "seed",
                      "classes", "limit_per_class"):
            assert param in entry["parameters"], (name, param)
            assert "{" + param + "}" in entry["command"], (name, param)
    assert "{weights}" in spec["entry_points"]["mobilenet"]["command"]


def test_binary_is_the_simple_cnn_on_two_classes():
    cfg = load_config(REPO / "experiments" / "binary.yaml")
    assert cfg.architecture == "simple_cnn" and cfg.classes == ("COVID", "Normal")
    assert cfg.monitor == "val_accuracy"
