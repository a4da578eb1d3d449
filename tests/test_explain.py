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
