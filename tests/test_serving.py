"""`mlflow models serve` on the registered classifier, with real HTTP requests."""

import json
import urllib.error
import urllib.request

import pytest
from servers import mlflow_server

from xraytrack.serving.classifier import encode_image
from xraytrack.tracking.registry import register_best

pytestmark = pytest.mark.slow


def post(base: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(base + "/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_served_champion_answers_images_and_rejects_malformed_requests(trained, tmp_path):
    register_best("xraytrack", "test_macro_f1", "served")
    images = sorted((trained["data"] / "Viral Pneumonia" / "images").glob("*.png"))[:2]
    good = {"dataframe_split": {"columns": ["image"],
                                "data": [[encode_image(f.read_bytes())] for f in images]}}
    args = ["models", "serve", "-m", "models:/served@champion", "--env-manager", "local",
            "--host", "127.0.0.1"]
    with mlflow_server(args, "/ping", log_dir=tmp_path) as base:
        status, out = post(base, good)
        assert status == 200, out
        rows = out["predictions"]
        assert len(rows) == 2 and {"label", "COVID", "Normal", "Viral Pneumonia"} <= set(rows[0])
        assert rows[0]["label"] in ("COVID", "Normal", "Viral Pneumonia")

        for bad, message in [
            ({"dataframe_split": {"columns": ["image"], "data": [["not base64!"]]}}, "base64"),
            ({"dataframe_split": {"columns": ["image"], "data": [["aGVsbG8="]]}}, "readable"),
            ({"dataframe_split": {"columns": ["image"], "data": []}}, ""),
            (b"{not json", ""),
        ]:
            status, out = post(base, bad)
            assert 400 <= status < 500, (bad, status, out)
            assert message in out.get("message", "")

        status, out = post(base, good)  # still serving after the bad requests
        assert status == 200 and len(out["predictions"]) == 2
