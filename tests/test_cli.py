import mlflow
import pytest
from click.testing import CliRunner

from xraytrack.cli import main

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "train" in result.output and "data" in result.output


def test_data_summary_counts_duplicates_and_skipped_files(dataset):
    result = invoke("data", "summary", str(dataset), "--img-size", "32")
    assert result.exit_code == 0, result.output
    assert "Indexed 77 images in 3 classes" in result.output
    assert "near-duplicate groups: 1 holding 2 images" in result.output
    assert "skipped COVID/images/corrupt.png" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data-dir", "/no/such/folder"], "data_dir /no/such/folder does not exist"),
        (["--classes", "COVID,Pneumonia"], "unknown class 'Pneumonia'"),
        (["--weights", "/no/weights.h5"], "weights file /no/weights.h5 does not exist"),
        (["--hp", "dense_units"], "--hp expects name=value"),
        (["--balance", "smote"], "unknown balancing strategy 'smote'; valid: none, class_weight"),
        (["--lr-schedule", "step"], "unknown lr_schedule 'step'; choose one of constant, cosine"),
        (["--warmup-epochs", "1"], "warmup_epochs needs lr_schedule cosine"),
        (["--lr-schedule", "cosine", "--warmup-epochs", "5", "--epochs", "5"],
         "warmup_epochs (5) must be fewer than epochs (5)"),
        (["--monitor", "val_f1"], "unknown monitor 'val_f1'; choose one of val_loss, val_accuracy"),
        (["--cache-dir", "/dev/null/cache"], "Not a directory: /dev/null/cache"),
        # these trained nothing and logged it FINISHED, or ended in a traceback
        (["--epochs", "0"], "epochs must be at least 1; got 0"),
        (["--batch-size", "0"], "batch_size must be at least 1; got 0"),
        (["--img-size", "16"], "img_size must be at least 32; got 16"),
        (["--patience", "-1"], "patience must be at least 0; got -1"),
        (["--learning-rate", "-1"], "learning_rate must be above 0; got -1"),
        (["--hp", "dense_units=0"], "cannot build simple_cnn with dense_units=0: Received an "
                                    "invalid value for `units`"),
        # ignored: the run trained from random weights and logged the weights it never loaded
        (["--weights", "imagenet"], "weights=imagenet needs a pretrained base (mobilenet); "
                                    "simple_cnn starts from random weights"),
    ],
)
def test_input_problems_are_one_line_errors_and_start_no_run(dataset, args, message):
    config = "mobilenet.yaml" if args[:2] == ["--weights", "/no/weights.h5"] else "simple_cnn.yaml"
    base = ["train", "--config", str(REPO / "experiments" / config), "--data-dir", str(dataset)]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_train_through_the_cli_with_blank_mlproject_defaults(dataset):
    result = invoke("train", "--config", str(REPO / "experiments" / "binary.yaml"),
                    "--data-dir", str(dataset), "--epochs", "1", "--img-size", "32",
                    "--batch-size", "", "--learning-rate", "", "--balance", "oversample",
                    "--lr-schedule", "", "--warmup-epochs", "", "--monitor", "", "--hp", "",
                    "--hp", "label_smoothing=0.1,weight_decay=1e-4", "--experiment", "cli")
    assert result.exit_code == 0, result.output
    (run,) = mlflow.search_runs(experiment_names=["cli"], output_format="list")
    assert run.data.params["cfg.classes"] == "COVID,Normal"
    assert run.data.params["cfg.batch_size"] == "32"  # blank kept the experiment file's value
    assert run.data.params["cfg.monitor"] == "val_accuracy"
    assert run.data.params["cfg.balance"] == "oversample"
    assert run.data.params["cfg.lr_schedule"] == "constant"
    # 1e-4 is a number (YAML 1.1 would read a string), and decay means AdamW
    assert run.data.params["hp.weight_decay"] == "0.0001"
    assert run.data.params["optimizer_weight_decay"] == "0.0001"  # AdamW's own setting
    assert run.data.params["hp.label_smoothing"] == "0.1"


@pytest.mark.parametrize("args, message", [
    # 0 was taken as 'not given' and 1000 resamples were drawn
    (["evaluate", "0" * 32, "DATA", "--n-bootstrap", "0"], "'--n-bootstrap': 0 is not in the range"),
    # 0 put every image in one batch
    (["predict", "0" * 32, "DATA", "--batch-size", "0"], "'--batch-size': 0 is not in the range"),
    (["data", "summary", "DATA", "--img-size", "8"], "'--img-size': 8 is not in the range x>=32"),
])
def test_counts_out_of_range_are_refused_by_every_command(dataset, args, message):
    result = CliRunner().invoke(main, [str(dataset) if a == "DATA" else a for a in args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("args, message", [
    (["--vary", "preprocess"], "no value of preprocess given to compare"),
    (["--vary", "preprocess", "--strategies", "none,sharpen"], "unknown preprocessing 'sharpen'"),
    (["--vary", "classes", "--strategies", "a,b"], "cannot vary 'classes'"),
    (["--strategies", "none,smote"], "unknown balancing strategy 'smote'"),
    # these trained the first arms and failed at the bad one, the parent run FAILED
    (["--vary", "hp.label_smoothing", "--strategies", "0,1.5"], "label_smoothing must be from 0"),
    (["--vary", "hp.dense_unit", "--strategies", "64,128"], "has no hyper-parameter 'dense_unit'"),
    # -1 and 1 give one metric name, so this said "given twice" instead of the range
    (["--vary", "patience", "--strategies", "1,-1"], "patience must be at least 0; got -1"),
    # both arms trained from random weights and were logged as a comparison of weights
    (["--vary", "weights", "--strategies", "none,imagenet"], "weights=imagenet needs a pretrained"),
])
def test_compare_refuses_a_bad_arm_in_one_line_before_any_run(dataset, args, message):
    base = ["compare", "--config", str(REPO / "experiments" / "simple_cnn.yaml"), "--data-dir",
            str(dataset)]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
