"""`xraytrack explain` and `xraytrack audit` on a model trained earlier."""

import mlflow
from click.testing import CliRunner
from PIL import Image

from xraytrack.cli import main


def test_explain_writes_one_overlay_per_readable_image(trained, tmp_path):
    images = trained["data"] / "COVID" / "images"
    out = tmp_path / "overlays"
    result = CliRunner().invoke(main, ["explain", trained["run_id"], str(images / "COVID-0.png"),
                                       str(images / "corrupt.png"), str(images / "rgba.png"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["COVID-0_gradcam.png", "rgba_gradcam.png"]
    assert Image.open(out / written[0]).size[0] > 200


def test_explain_keeps_one_overlay_per_image_when_names_repeat(trained, tmp_path):
    """Exports often reuse a file name per study: the overlays mirror the folders given."""
    source = (trained["data"] / "COVID" / "images" / "COVID-0.png").read_bytes()
    for study in ("patient1", "patient2/study1"):
        (tmp_path / "site" / study).mkdir(parents=True)
        (tmp_path / "site" / study / "IM-0001.png").write_bytes(source)
    out = tmp_path / "overlays"
    one = tmp_path / "IM-0001.png"
    one.write_bytes(source)
    result = CliRunner().invoke(main, ["explain", trained["run_id"], str(tmp_path / "site"),
                                       str(one), str(one), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 4 overlays" in result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["IM-0001_2_gradcam.png", "IM-0001_gradcam.png",
                       "patient1/IM-0001_gradcam.png", "patient2/study1/IM-0001_gradcam.png"]


def test_audit_of_a_registered_model_logs_into_its_source_run(trained):
    from xraytrack.tracking.registry import register_best

    register_best("xraytrack", "test_macro_f1", "audited")
    before = mlflow.get_run(trained["run_id"]).info
    result = CliRunner().invoke(main, ["audit", "models:/audited@champion"])
    assert result.exit_code == 0, result.output
    assert "lungs removed" in result.output
    run = mlflow.get_run(trained["run_id"])
    assert (run.info.status, run.info.end_time) == ("FINISHED", before.end_time)
    assert {"audit_lungs_removed_balanced_accuracy", "audit_shortcut_flag"} <= set(run.data.metrics)


def test_unknown_references_are_one_line_errors(trained):
    result = CliRunner().invoke(main, ["audit", "not-a-run"])
    assert result.exit_code == 1 and "neither a run id" in result.output
