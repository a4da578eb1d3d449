"""The ``xraytrack`` command line. MLproject entry points are thin calls of these commands."""

from __future__ import annotations

import functools
import logging
import os
import sys

# Before TensorFlow loads: oneDNN halves MobileNetV2's CPU cost on AVX2 machines, where TF leaves
# it off; and TF's C++ start-up chatter hides the messages users need.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from xraytrack.errors import XrayTrackError  # noqa: E402


class Blankable(click.ParamType):
    """An option type where an empty string means 'not given': MLproject defaults are ''."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = inner.name

    def convert(self, value, param, ctx):
        if value is None or value == "":
            return None
        return self.inner.convert(value, param, ctx)


INT, FLOAT, STR, BOOL = (Blankable(t) for t in (click.INT, click.FLOAT, click.STRING, click.BOOL))
RESAMPLES = Blankable(click.IntRange(min=1))  # a blank is the default; 0 was taken as blank too


def split_list(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def parse_hp(items: tuple[str, ...]) -> dict:
    """``--hp dense_units=256`` pairs, also comma-separated (``-P hp=label_smoothing=0.1,
    weight_decay=1e-4`` in MLproject, where blank means none); values parsed as YAML so numbers
    stay numbers."""

    out = {}
    for item in (part.strip() for given in items for part in given.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise XrayTrackError(f"--hp expects name=value, got {item!r}")
        out[name.strip()] = _number_or_yaml(value)
    return out


def _number_or_yaml(text: str):
    """1e-4 is a number here, though YAML 1.1 (PyYAML) reads it as a string."""
    import yaml

    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return yaml.safe_load(text)


def _store_error(exc: Exception) -> tuple[str, bool]:
    """One line for a tracking store that refused or went away, its password never shown; and
    whether it went away."""
    import mlflow

    from xraytrack.tracking.store import is_lost, reason, redact

    uri = redact(mlflow.get_tracking_uri())
    if is_lost(exc):
        return (f"lost the tracking store at {uri} ({reason(exc)}). Whatever finished training is "
                "kept in its checkpoint: re-run the same command once the store is back to "
                "resume.", True)
    return f"tracking store {uri}: {reason(exc)}.", False


LOCAL_COMMANDS = {"data_summary"}  # commands that never talk to the tracking store

_RESUME = "Re-run the same command to resume from the last finished epoch"
INTERRUPTED = {  # what Ctrl-C leaves behind, and how to go on; other commands just stop
    "train": f"the MLflow run is marked KILLED. {_RESUME}.",
    "compare": f"its MLflow runs are marked KILLED. {_RESUME}; finished arms are reused.",
    "tune": "its MLflow runs are marked KILLED. Re-run the same command to continue the search: "
            "finished trials are kept, the interrupted one runs again.",
    "evaluate": "its MLflow run is marked KILLED.",
    "predict": "the CSV holds every row predicted so far.",
    "explain": "the overlays written so far are kept.",
}
RUN_COMMANDS = {"train", "compare", "tune", "evaluate"}  # the commands whose results are runs


def _what_is_left(command: str) -> str:
    """The end of the Ctrl-C line: what the command leaves, and how to go on."""
    from xraytrack.tracking import runs

    advice = ""
    if command == "tune":
        from xraytrack.training import search_roles  # loaded already, by tune itself

        advice = search_roles.how_to_go_on()
        if search_roles.role() == "worker":
            in_a_trial = bool(runs.killed_here)
            runs.end_unopened_run()  # the worker's record under `mlflow run`, KILLED as well
            if not in_a_trial:
                return f" between trials; every trial this worker finished is logged.{advice}"
    left = INTERRUPTED.get(command)
    if command in RUN_COMMANDS and not runs.killed_here:
        status = runs.end_unopened_run()  # under `mlflow run`, the run it was started in
        if status is None:
            return " before its MLflow run started; nothing was logged."
        if runs.killed_here:
            left = "its MLflow run is marked KILLED, before any result was logged to it."
        elif status == "RUNNING":
            left = "its MLflow run is left RUNNING: the tracking store did not answer."
        else:
            left = f"its MLflow run had already ended {status}."
    return f"; {left}{advice}" if left else "."


def friendly_errors(fn):
    """Input problems, and a file or folder that cannot be read or written, become one line on
    stderr; Ctrl-C says how to resume; a tracking store that is down is found in seconds, before
    any work, and one that goes away mid-run ends the command with one line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mlflow.exceptions import MlflowException
        from requests.exceptions import RequestException

        from xraytrack.tracking import runs, store

        runs.killed_here.clear()  # a command's own runs (tests run many in one process)
        try:
            if fn.__name__ not in LOCAL_COMMANDS:
                store.limit_retries()
                store.check_reachable()
            return fn(*args, **kwargs)
        except XrayTrackError as exc:
            raise click.ClickException(str(exc)) from None
        except (MlflowException, RequestException) as exc:
            message, lost = _store_error(exc)
            if not lost:
                raise click.ClickException(message) from None
            # The store is gone: MLflow's exit hooks and its system-metrics thread would retry it
            # forever. Nothing is left to save (the checkpoint is on disk), so leave at once.
            click.echo(f"Error: {message}", err=True)
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(1)
        except OSError as exc:
            if exc.filename is None:  # not a path the user chose: a real fault, shown in full
                raise
            # an output or cache folder that cannot be made or written: say which, in one line
            from xraytrack.data.index import printable

            raise click.ClickException(f"{exc.strerror}: {printable(exc.filename)}") from None
        except KeyboardInterrupt:
            click.echo(f"\nInterrupted{_what_is_left(fn.__name__)}", err=True)
            sys.exit(130)

    return wrapper


def load_run_config(config_path, data_dir, classes, hyperparameters=None, **overrides):
    """The experiment file with the options a user gave; the data folder may come from the env."""
    from xraytrack.config import load_config

    return load_config(config_path).with_overrides(
        data_dir=data_dir or os.environ.get("XRAYTRACK_DATA_DIR"),
        classes=split_list(classes),
        hyperparameters=hyperparameters or {},
        **overrides,
    )


def with_options(fn, options: list):
    """Decorate ``fn`` with click ``options``, listed in the order --help shows them."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def data_options(fn):
    """Options every data-reading command shares."""
    options = [
        click.option("--data-dir", type=STR, help="Dataset root (Kaggle layout). "
                     "Default: $XRAYTRACK_DATA_DIR."),
        click.option("--classes", type=STR, help="Comma-separated class subset, in label order."),
        click.option("--limit-per-class", type=INT, help="Seeded sample of N images per class."),
        click.option("--img-size", type=INT, help="Square input size in pixels."),
        click.option("--seed", type=INT, help="Seed of the starting weights, augmentation and "
                     "training order."),
        click.option("--split-seed", type=INT, help="Seed of the train/val/test split and of the "
                     "--limit-per-class sample (default 42), kept fixed across --seeds."),
        click.option("--cache-dir", type=STR, help="Where decoded images and checkpoints go. "
                     "Default: $XRAYTRACK_CACHE_DIR or ~/.cache/xraytrack."),
    ]
    return with_options(fn, options)


def input_options(fn):
    """What a model is trained on beyond the data: balancing, augmentation, preprocessing (part
    of the model), and whether its run audits itself; shared by train and tune."""
    options = [
        click.option("--balance", type=STR, help="Class balancing of the training split: none, "
                     "class_weight, oversample, undersample or balanced_batches."),
        click.option("--augment", type=BOOL, help="Augmentation layers on or off (true/false)."),
        click.option("--preprocess", type=STR, help="Strategies against source shortcuts, joined "
                     "by '+': border_crop[=0.8] or lung_crop, equalize, photometric[=0.5], "
                     "outside_lung_dropout[=0.5] (default none)."),
        click.option("--audit", type=BOOL, help="Shortcut audit and Grad-CAM overlays (default "
                     "true)."),
    ]
    return with_options(fn, options)


def schedule_options(fn):
    """When a fit stops and how its learning rate moves: part of issue 13's recipe, shared by
    every command that fits (a tune trial included)."""
    options = [
        click.option("--monitor", type=STR, help="What early stopping and the best-epoch "
                     "checkpoint watch: val_loss, val_macro_f1, val_auc or val_accuracy."),
        click.option("--patience", type=INT, help="Epochs without improvement before stopping "
                     "(0: never stop early)."),
        click.option("--lr-schedule", type=STR, help="constant, cosine (after --warmup-epochs of "
                     "linear warm-up) or plateau (x0.2 after 2 epochs without improvement)."),
        click.option("--warmup-epochs", type=INT, help="Linear warm-up epochs of --lr-schedule "
                     "cosine."),
    ]
    return with_options(fn, options)


def recipe_options(fn):
    """How a run fits, beyond epochs and learning rate: issue 13's fine-tuning recipe settings."""
    options = [
        schedule_options,
        click.option("--head-epochs", type=INT, help="Of --epochs, the first ones train the new "
                     "head alone on a frozen pretrained base, at 10x the learning rate (0: off)."),
        click.option("--hp", "hp_items", multiple=True, help="Any hyper-parameter, e.g. "
                     "--hp dense_units=256, --hp label_smoothing=0.1,weight_decay=1e-4."),
    ]
    return with_options(fn, options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool):
    """Train, evaluate and track chest X-ray classifiers with Keras 3 and MLflow."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "matplotlib", "PIL", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # one line per retry of a dead store


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Experiment file, e.g. experiments/mobilenet.yaml.")
@data_options
@click.option("--epochs", type=INT)
@click.option("--batch-size", type=INT)
@click.option("--learning-rate", type=FLOAT)
@click.option("--weights", type=STR, help="MobileNetV2 weights: an .h5 path, 'imagenet' or 'none'.")
@click.option("--trainable-layers", type=INT, help="MobileNetV2 base layers left trainable.")
@input_options
@recipe_options
@click.option("--distribute", type=STR, help="auto (every GPU when there are two or more), none, "
              "or data_parallel (every local device); --batch-size stays the global batch.")
@click.option("--seeds", type=STR, help="Repeat with each seed (1,2,3): one child run per seed, "
              "the parent reports mean, sd, min and max of every test metric.")
@click.option("--experiment", type=STR, help="MLflow experiment (ignored under `mlflow run`).")
@click.option("--run-name", type=STR)
@friendly_errors
def train(config_path, data_dir, classes, learning_rate, trainable_layers, hp_items, seeds,
          **overrides):
    """Train one architecture, evaluate it on the test split, log everything to MLflow."""
    from xraytrack.training.repeats import run_repeats
    from xraytrack.training.train import run_training

    hps = parse_hp(hp_items)
    if learning_rate is not None:
        hps["learning_rate"] = learning_rate
    if trainable_layers is not None:
        hps["trainable_layers"] = trainable_layers
    cfg = load_run_config(config_path, data_dir, classes, hps, **overrides)
    run_repeats(cfg, split_list(seeds)) if seeds else run_training(cfg)


@main.group()
def data():
    """Inspect a dataset before training on it."""


@data.command("summary")
@click.argument("data_dir", type=click.Path())
@click.option("--classes", type=STR)
@click.option("--img-size", type=click.IntRange(min=32), default=150, show_default=True)
@click.option("--split-seed", "--seed", "seed", type=int, default=42, show_default=True,
              help="Seed of the split it would get.")
@click.option("--cache-dir", type=STR)
@friendly_errors
def data_summary(data_dir, classes, img_size, seed, cache_dir):
    """Per-class counts, near-duplicate groups, unreadable files and the split it would get."""
    from xraytrack.config import TrainConfig
    from xraytrack.data.index import index_dataset, skipped_folders
    from xraytrack.data.prepare import PreparedData, describe, read_images, summarize
    from xraytrack.data.split import make_split

    index = index_dataset(data_dir, split_list(classes), seed=seed)
    click.echo(f"Indexed {len(index.paths)} images in {len(index.classes)} classes under {index.root}")
    for name, why in skipped_folders(index.root):
        click.echo(f"  not a class: {name}/ ({why})")
    d = TrainConfig(architecture="")
    found = read_images(index, img_size, d.dedup_distance, cache_dir)
    try:
        split = make_split(found.index, found.groups, d.val_fraction, d.test_fraction, seed)
    except XrayTrackError as exc:  # a summary needs no split: say so as a note
        click.echo(describe(found))
        click.echo(f"Note: {exc}; training needs more images.")
    else:
        click.echo(summarize(PreparedData(split, found.pixels, found.rows, found.skipped)))
    for s in found.skipped:
        click.echo(f"  skipped {s['path']}: {s['reason']}")


@main.group("runs")
def runs_group():
    """Look after the runs in the tracking store."""


@runs_group.command("cleanup")
@click.option("--experiment", required=True, help="MLflow experiment to look through.")
@friendly_errors
def runs_cleanup(experiment):
    """Mark KILLED the RUNNING runs whose process is gone (killed with SIGKILL, out of memory, a
    pre-empted node); prints what it changed and what it left alone."""
    from xraytrack.tracking.runs import cleanup

    for line in cleanup(experiment):
        click.echo(line)


@main.command()
@click.option("--experiment", default="xraytrack", show_default=True)
@click.option("--metric", default="restored_val_macro_f1", show_default=True,
              help="Chooses the run: by default the restored epoch's validation macro-F1. A "
              "test_ metric is read only if you name it.")
@click.option("--name", default="xraytrack-cxr", show_default=True, help="Registered model name.")
@click.option("--mode", type=click.Choice(["auto", "max", "min"]), default="auto", show_default=True,
              help="auto: minimise losses and errors, maximise everything else.")
@click.option("--alias", default="champion", show_default=True)
@click.option("--min-delta", type=float, default=0.005, show_default=True,
              help="How much better than the current alias holder (same split) the run must be.")
@click.option("--force", is_flag=True, help="Give it the alias even if it does not pass.")
@click.option("--onnx", is_flag=True, help="Also export the classifier to ONNX (`xraytrack export`) "
              "and register it as NAME-onnx with the same alias: it serves without TensorFlow.")
@friendly_errors
def register(experiment, metric, name, mode, alias, min_delta, force, onnx):
    """Register the best FINISHED run's classifier; it takes the alias only if it beats the
    current holder by --min-delta on the same split, else it becomes 'challenger'."""
    from xraytrack.tracking.registry import register_best

    done = register_best(experiment, metric, name, mode, alias, min_delta, force)
    value = f"{metric} = {done.run.data.metrics[metric]:.4f}"
    if done.version is None:
        click.echo(f"Nothing registered: {done.reason}; models:/{name}@{alias}")
    else:
        click.echo(f"Registered {name} version {done.version.version} from run {done.run.info.run_id} "
                   f"(chosen by {value}) as {done.alias}: {done.reason}; models:/{name}@{done.alias}")
    if onnx:
        _register_onnx(done, metric, f"{name}-onnx")


def _register_onnx(done, metric: str, name: str) -> None:
    from xraytrack.serving.export import export_run
    from xraytrack.tracking.registry import register_twin

    exported = export_run(done.run.info.run_id)
    click.echo(_exported_line(exported))
    version = register_twin(done, metric, exported.model_uri, name)
    if version is None:
        click.echo(f"Nothing registered: its ONNX classifier already is models:/{name}@{done.alias}")
    else:
        click.echo(f"Registered {name} version {version.version} as {done.alias}; "
                   f"models:/{name}@{done.alias}")


def _exported_line(exported) -> str:
    if exported.reused:
        return f"Run {exported.run_id} already has its ONNX classifier: {exported.model_uri}"
    return (f"Exported run {exported.run_id} to ONNX ({exported.model_uri}); largest difference "
            f"from Keras {exported.max_difference:.1e}")


@main.command()
@click.argument("model_ref")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@friendly_errors
def export(model_ref, fmt):
    """Log a run's classifier again as ONNX (model 'classifier_onnx' of the same run): same
    request and answer, served by ONNX Runtime without TensorFlow. MODEL_REF: a run id, runs:/ or
    models:/ URI. Refuses a graph whose probabilities differ from Keras' by more than 1e-4."""
    from xraytrack.serving.export import export_run

    click.echo(_exported_line(export_run(model_ref, fmt)))


@main.command()
@click.argument("model_ref")
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False), default="predictions.csv", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@friendly_errors
def predict(model_ref, paths, out, batch_size):
    """Classify image files and folders (recursively) with a run id or models:/ URI, e.g.
    models:/xraytrack-cxr@champion (or its ONNX twin, models:/xraytrack-cxr-onnx@champion).

    Rows are written as they are predicted: an interrupted run keeps what it had done."""
    from xraytrack.serving.predict import predict_to_csv

    written, skipped = predict_to_csv(model_ref, list(paths), out, batch_size)
    click.echo(f"Wrote {plural(written, 'prediction')} to {out}")
    for path, reason in skipped:
        click.echo(f"  skipped {path}: {reason}", err=True)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Experiment file of the architecture, e.g. experiments/mobilenet.yaml.")
@click.option("--vary", type=STR, default="balance", show_default=True,
              help="The setting the arms differ in: balance, preprocess, img_size, epochs, monitor, "
              "patience, weights, ... or a hyper-parameter hp.<name>.")
@click.option("--strategies", type=STR, help="Comma-separated values of that setting, the first "
              "one the baseline (for balance, default: "
              "none,class_weight,oversample,undersample,balanced_batches).")
@click.option("--select-metric", type=STR, default="macro_f1", show_default=True,
              help="Picks the best strategy, e.g. macro_f1, recall_covid, covid_sens_at_95_spec.")
@click.option("--n-bootstrap", type=RESAMPLES, default=1000, show_default=True)
@click.option("--external-dir", type=STR, help="A labelled set from another site (as `evaluate` "
              "reads it): each strategy's model is evaluated there too, its scores beside the "
              "internal ones.")
@click.option("--site", type=STR, help="Name of the external site (default as `evaluate`).")
@click.option("--label-map", type=STR, help="Rename the external set's labels first.")
@click.option("--external-metric", type=STR, default="macro_auc", show_default=True,
              help="The site's score to raise, e.g. auc_covid: the parent names the arm with the "
              "highest one among those within --tolerance of the baseline inside.")
@click.option("--tolerance", type=FLOAT, default=0.02, show_default=True,
              help="Internal --select-metric an arm may lose against the baseline.")
@click.option("--seeds", type=STR, help="Train every strategy once per seed (1,2,3) on the same "
              "split; the best strategy is the one with the best mean.")
@data_options
@click.option("--epochs", type=INT)
@click.option("--batch-size", type=INT)
@click.option("--distribute", type=STR, help="auto, none or data_parallel, as for train.")
@click.option("--learning-rate", type=FLOAT)
@click.option("--weights", type=STR)
@click.option("--balance", type=STR, help="Balancing of every arm, when it is not what varies.")
@click.option("--preprocess", type=STR, help="Preprocessing of every arm, when it is not what "
              "varies.")
@recipe_options
@click.option("--experiment", type=STR)
@friendly_errors
def compare(config_path, vary, strategies, select_metric, n_bootstrap, external_dir, site,
            label_map, external_metric, tolerance, seeds, data_dir, classes, learning_rate,
            hp_items, **overrides):
    """Train one child run per value of one setting (class balancing by default) and compare
    them with bootstrap CIs; with --external-dir, also at another site."""
    from xraytrack.data.labelled import parse_label_map
    from xraytrack.training.compare import ExternalSet, run_comparison

    hps = parse_hp(hp_items) | ({} if learning_rate is None else {"learning_rate": learning_rate})
    cfg = load_run_config(config_path, data_dir, classes, hps, **overrides)
    external = (ExternalSet(external_dir, site, parse_label_map(label_map)) if external_dir
                else None)
    if not strategies and (vary or "balance") == "balance":
        strategies = "none,class_weight,oversample,undersample,balanced_batches"
    run_comparison(cfg, split_list(strategies) or (), select_metric or "macro_f1",
                   n_bootstrap or 1000, external, split_list(seeds), vary=vary or "balance",
                   external_metric=external_metric or "macro_auc",
                   tolerance=0.02 if tolerance is None else tolerance)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Experiment file of the architecture to tune, e.g. experiments/adapted_cnn.yaml.")
@click.option("--tuner", type=STR, default="hyperband", show_default=True,
              help="hyperband, bayesian or random (keras-tuner's oracles).")
@click.option("--max-trials", type=INT, default=20, show_default=True)
@click.option("--objective", type=STR, default="val_macro_f1", show_default=True,
              help="val_macro_f1, val_auc, val_accuracy or val_loss (validation split only).")
@data_options
@click.option("--epochs", type=INT, help="Epochs per trial (Hyperband: the most any trial gets).")
@click.option("--batch-size", type=INT)
@click.option("--weights", type=STR)
@input_options
@schedule_options
@click.option("--experiment", type=STR)
@friendly_errors
def tune(config_path, tuner, max_trials, objective, data_dir, classes, **overrides):
    """Search hyper-parameters with keras-tuner; trials are child runs, the best is retrained."""
    from xraytrack.training.tune import SearchSettings, run_search

    cfg = load_run_config(config_path, data_dir, classes, **overrides)
    defaults = SearchSettings()
    run_search(cfg, SearchSettings(tuner=tuner or defaults.tuner,
                                   max_trials=defaults.max_trials if max_trials is None else max_trials,
                                   objective=objective or defaults.objective))


@main.command()
@click.argument("model_ref")
@click.argument("source")
@click.option("--site", type=STR, help="Name of the site (default: the CSV's site column or the "
              "folder's name).")
@click.option("--label-map", type=STR, help="Rename labels first: 'NORMAL=Normal,PNEUMONIA=Viral "
              "Pneumonia'.")
@click.option("--n-bootstrap", type=RESAMPLES, default=1000, show_default=True)
@click.option("--internal-data-dir", type=STR, help="Where the model's own training data is now, "
              "to measure the shift (default: as logged).")
@click.option("--experiment", type=STR, default="xraytrack", show_default=True,
              help="MLflow experiment (ignored under `mlflow run`).")
@friendly_errors
def evaluate(model_ref, source, site, label_map, n_bootstrap, internal_data_dir, experiment):
    """Evaluate a trained model (run id or models:/ URI) on a labelled set from another site.

    SOURCE: class folders (Kaggle or flat layout), or a CSV with path, label[, patient_id, site];
    PNG, JPEG or DICOM. Reports every metric beside the internal test split's, with bootstrap
    intervals, calibration, the validation operating points and the shift."""
    from xraytrack.data.labelled import parse_label_map
    from xraytrack.evaluation.site import evaluate_site

    evaluate_site(model_ref, source, site, parse_label_map(label_map), n_bootstrap or 1000,
                  experiment or "xraytrack", internal_data_dir)


@main.command()
@click.argument("model_ref")
@click.option("--data-dir", type=STR, help="Where the run's images are now (default: as logged).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@friendly_errors
def audit(model_ref, data_dir, batch_size):
    """Shortcut audit of a trained model (a run id or models:/ URI) on its test split."""
    from xraytrack.explain.audit import audit_run

    result = audit_run(model_ref, data_dir, batch_size)
    click.echo(result.text)


@main.command()
@click.argument("model_ref")
@click.argument("images", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), default="gradcam", show_default=True)
@friendly_errors
def explain(model_ref, images, out):
    """Grad-CAM overlays of IMAGES (files or folders) for a run id or models:/ URI."""
    from xraytrack.explain.overlays import explain_images

    written = explain_images(model_ref, list(images), out)
    click.echo(f"Wrote {plural(len(written), 'overlay')} to {out}")
