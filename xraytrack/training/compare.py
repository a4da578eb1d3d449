"""The comparison entry point: one child run per value of one setting, one parent that compares.

By default the setting is class balancing; ``vary`` picks another (``preprocess``, ``img_size``,
``hp.learning_rate``...: see ``training.arms``), and every arm still shares the split, seed and
starting weights. The first value given is the baseline the others are read against.

With ``seeds`` every strategy is trained once per seed (children ``<strategy> seed <n>``, the same
split for all): the bootstrap table then has a row per child, and ``comparison_seeds.md`` gives
each strategy's mean ± sd over its seeds, which is what picks the best strategy.

An arm is trained only when the experiment holds no finished run of it: neither a child of an
earlier comparison nor a seed of a ``--seeds`` repeat with the same settings (the baseline is
often the default recipe, whose seeds a user has already run; each of those is half an hour).

The numbers compared are the children's own test predictions (``predictions.csv``), scored by
``evaluation.metrics.scores`` as the children were; with an external set, each strategy's model
is also evaluated there by ``evaluation.site`` (one nested evaluation run each) and its scores
sit beside the internal ones. This module only orchestrates the runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mlflow
import pandas as pd

from xraytrack.config import TrainConfig
from xraytrack.data.labelled import read_labelled
from xraytrack.errors import XrayTrackError
from xraytrack.evaluation import comparison, metrics, paired, plots
from xraytrack.evaluation.predictions import read_predictions
from xraytrack.evaluation.site import (
    evaluate_site,
    read_site_predictions,
    read_site_scores,
    site_name,
)
from xraytrack.evaluation.test_split import log_figure
from xraytrack.models import hyperparameters
from xraytrack.tracking import runs
from xraytrack.training import arms, distribute
from xraytrack.training.repeats import check_seeds, finished_seed, repeats_key
from xraytrack.training.train import resolve, run_training, seeded_model


def compare_key(cfg: TrainConfig, seeded: bool = False, vary: str = "balance") -> str:
    """Identifies the comparison (any value of the varied setting, and any seed when seeded), so a
    re-run can reuse finished children. Comparisons of balancing keep their earlier keys."""
    shared = arms.neutral(cfg, vary)
    extra = {} if vary == "balance" else {"vary": vary}
    if seeded:
        return dataclasses.replace(shared, seed=0).resume_key(role="compare-seeds", **extra)
    return shared.resume_key(role="compare", **extra)


def arm_label(strategy: str, seed: int | None) -> str:
    return strategy if seed is None else f"{strategy} seed {seed}"


def child_tags(key: str, strategy: str, seed: int | None) -> dict[str, str]:
    tags = {"xraytrack.compare_key": key, "xraytrack.strategy": strategy}
    return tags if seed is None else tags | {"xraytrack.seed": str(seed)}


def finished_child(experiment_id: str, key: str, strategy: str, seed: int | None = None) -> str | None:
    run = runs.latest_finished(experiment_id, child_tags(key, strategy, seed))
    return run.info.run_id if run else None


@dataclass
class ExternalSet:
    """A labelled set from another site that every strategy's model is evaluated on."""

    source: str
    site: str | None = None  # its name; by default as ``evaluate`` names it
    label_map: dict[str, str] | None = None
    digest: str | None = None  # of its listing: an evaluation is reused only for the same set

    def checked(self, classes) -> ExternalSet:
        """Read the listing now: a wrong path or labels fail before hours of training, not after."""
        files = read_labelled(self.source, self.label_map)
        files.check_labels(classes)
        return dataclasses.replace(self, site=site_name(files, self.site), digest=files.digest())


def finished_evaluation(experiment_id: str, child: str, external: ExternalSet) -> str | None:
    run = runs.latest_finished(experiment_id,
                               {"xraytrack.source_run": child, "xraytrack.site": external.site},
                               {"eval.digest": external.digest})
    return run.info.run_id if run else None


def evaluate_externally(cfg: TrainConfig, child: str, strategy: str, external: ExternalSet,
                        experiment_id: str, n_boot: int) -> str:
    """The strategy's evaluation run at the external site, reused when it already exists."""
    done = finished_evaluation(experiment_id, child, external)
    if done:
        print(f"Strategy {strategy}: reusing evaluation {done} at {external.site}")
        return done
    print(f"Strategy {strategy}: evaluating at {external.site}")
    return evaluate_site(child, external.source, external.site, external.label_map, n_boot,
                         cfg.experiment, cfg.data_dir, nested=True,
                         tags={"xraytrack.strategy": strategy})


def run_comparison(cfg: TrainConfig, strategies, select_metric: str = "macro_f1",
                   n_boot: int = 1000, external: ExternalSet | None = None, seeds=None,
                   vary: str = "balance", external_metric: str = "macro_auc",
                   tolerance: float = 0.02) -> str:
    """Train (or reuse) every arm, then log the bootstrap comparison and, with ``external``, each
    arm at that site and the arm that best keeps ``select_metric`` inside (within ``tolerance``
    of the first arm) while raising ``external_metric`` outside."""
    distribute.single_host("compare")
    cfg, _ = resolve(cfg)
    vary = arms.check_vary(vary)
    strategies = arms.labels(vary, strategies)
    for value in strategies:  # a bad value fails now, not after hours of training the others
        arm = arms.arm_config(cfg, vary, value)
        if vary.startswith("hp."):  # a misspelt name, or a value a layer refuses, shows in building
            seeded_model(arm, hyperparameters(arm.hyperparameters))
    seeds = check_seeds(seeds) if seeds else None
    known = metrics.score_names(cfg.classes)
    if select_metric not in known:
        raise XrayTrackError(f"unknown metric {select_metric!r}; choose one of {', '.join(sorted(known))}")
    if external and external_metric not in known:
        raise XrayTrackError(f"unknown external metric {external_metric!r}; choose one of "
                             f"{', '.join(sorted(known))}")
    external = external.checked(cfg.classes) if external else None
    key = compare_key(cfg, seeded=bool(seeds), vary=vary)
    with runs.tracked_run(cfg.experiment, cfg.run_name or f"compare-{cfg.architecture}") as parent:
        mlflow.log_params(cfg.params() | {"compare.vary": vary,
                                          "compare.strategies": ",".join(strategies),
                                          "compare.select_metric": select_metric,
                                          "compare.n_boot": n_boot})
        if seeds:
            mlflow.log_param("repeats.seeds", ",".join(map(str, seeds)))
        if external:
            mlflow.log_params({"compare.external_dir": external.source,
                               "compare.external_site": external.site,
                               "compare.external_metric": external_metric,
                               "compare.tolerance": tolerance})
        mlflow.set_tags({"xraytrack.compare_key": key, "xraytrack.role": "comparison",
                         "xraytrack.vary": vary})
        runs.log_system_info()
        predictions, children, paths, evaluations = {}, {}, None, {}
        for strategy, seed in [(s, seed) for s in strategies for seed in (seeds or (None,))]:
            label = arm_label(strategy, seed)
            child = _child(cfg, key, vary, strategy, seed, parent.info.experiment_id)
            tested = read_predictions(child, cfg.classes)
            if paths is not None and tested.paths != paths:
                raise XrayTrackError(f"{label} was tested on a different split")
            paths, children[label] = tested.paths, child
            predictions[label] = (tested.y_true, tested.probs)
            if external:
                evaluations[label] = evaluate_externally(cfg, child, label, external,
                                                         parent.info.experiment_id, n_boot)
        table = comparison.compare(predictions, cfg.classes, n_boot=n_boot, seed=cfg.seed)
        mlflow.log_text(table.to_csv(), "comparison.csv")
        mlflow.log_text(f"# Each value of {vary}\n\n" + comparison.to_markdown(table) + "\n" +
                        comparison.summary(table, cfg.classes, baseline=strategies[0]),
                        "comparison.md")
        mlflow.log_dict(children, "child_runs.json")
        _log_audit(children)
        if external:
            outside = _log_external(table, evaluations, external.site, select_metric, cfg.classes)
            gains = (_log_paired(evaluations, strategies, seeds, external_metric, external.site,
                                 cfg.classes, n_boot, cfg.seed)
                     if len(strategies) > 1 else None)  # one strategy: no arm to pair
            _log_tradeoff(table, outside, strategies, seeds, select_metric, external_metric,
                          tolerance, external.site, gains)
        log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "roc"), "roc_by_strategy.png")
        log_figure(plots.strategy_curves_figure(predictions, cfg.classes, "pr"), "pr_by_strategy.png")
        log_figure(plots.interval_bars_figure(table, select_metric), f"{select_metric}_by_strategy.png")
        mlflow.log_metrics({f"{metrics.metric_name(label)}_{select_metric}": table.at[label, select_metric]
                            for label in table.index})
        best = (_log_seeds(table, strategies, seeds, select_metric) if seeds
                else table[select_metric].idxmax())
        best_value = (table.loc[[arm_label(best, s) for s in seeds], select_metric].mean() if seeds
                      else table.at[best, select_metric])
        mlflow.set_tag("xraytrack.best_strategy", best)
        mlflow.log_param("compare.best_strategy", best)
        mlflow.log_metric(f"best_{select_metric}", best_value)
        print(comparison.to_markdown(table))
        print(f"Best strategy by {select_metric}{' (mean over seeds)' if seeds else ''}: {best}")
        return parent.info.run_id


def _child(cfg: TrainConfig, key: str, vary: str, strategy: str, seed: int | None,
           experiment_id: str) -> str:
    label = arm_label(strategy, seed)
    child = finished_child(experiment_id, key, strategy, seed)
    if child:
        print(f"{label}: reusing finished run {child}")
        return child
    arm = dataclasses.replace(arms.arm_config(cfg, vary, strategy), run_name=label.replace(" ", "-"),
                              seed=cfg.seed if seed is None else seed)
    repeated = finished_seed(experiment_id, repeats_key(arm), arm.seed)
    if repeated:
        print(f"{label}: reusing finished run {repeated.info.run_id}, seed {arm.seed} of a "
              "--seeds repeat with the same settings")
        return repeated.info.run_id
    print(f"{label}: training")
    return run_training(arm, nested=True,
                        tags=child_tags(key, strategy, seed) | {"xraytrack.vary": vary})


def _log_seeds(table, strategies, seeds, select_metric: str) -> str:
    """Each strategy's mean ± sd over its seeds (``comparison_seeds.md/.csv`` and the parent's
    ``<strategy>_<metric>_mean/_sd``); returns the strategy with the best mean."""
    groups = {s: [arm_label(s, seed) for seed in seeds] for s in strategies}
    spread = comparison.across_seeds(table, groups)
    mlflow.log_text(spread.to_csv(), "comparison_seeds.csv")
    mlflow.log_text(f"# Each strategy over seeds {', '.join(map(str, seeds))}\n\n"
                    "Mean ± sd (n - 1) of each child's test score; the split is the same for every "
                    "child, so the spread is the seeds'.\n\n" + comparison.seeds_markdown(spread),
                    "comparison_seeds.md")
    mlflow.log_metrics({f"{metrics.metric_name(s)}_{select_metric}_{stat}":
                        spread.at[s, f"{select_metric}_{stat}"]
                        for s in strategies for stat in ("mean", "sd")})
    print(comparison.seeds_markdown(spread))
    return spread[f"{select_metric}_mean"].idxmax()


def _log_external(table, evaluations: dict[str, str], site: str, select_metric: str,
                  classes) -> pd.DataFrame:
    """The site's scores per strategy beside the internal ones: a table, a markdown page and
    the parent's ``<strategy>_<site>_auc_<class>`` metrics."""
    external = comparison.site_table({s: read_site_scores(r) for s, r in evaluations.items()})
    aucs = tuple(f"auc_{metrics.metric_name(c)}" for c in classes)
    internal = tuple(dict.fromkeys((select_metric, "macro_auc")))
    mlflow.log_text(external.to_csv(), "comparison_external.csv")
    mlflow.log_dict(evaluations, "evaluation_runs.json")
    mlflow.log_text(
        f"# Each strategy inside the database and at {site}\n\n"
        f"Internal: the shared test split. {site}: each strategy's model evaluated there "
        "(temperature-scaled, intervals resample patients when the set names them; runs in "
        "`evaluation_runs.json`).\n\n"
        + comparison.inside_and_outside(table, external, site, internal, aucs)
        + f"\n## Every score at {site}\n\n" + comparison.to_markdown(external),
        "comparison_external.md")
    tag = metrics.metric_name(site)
    mlflow.log_metrics({f"{metrics.metric_name(s)}_{tag}_{m}": external.at[s, m]
                        for s in external.index for m in aucs
                        if m in external.columns and external.at[s, m] == external.at[s, m]})
    print(comparison.inside_and_outside(table, external, site, internal, aucs))
    return external


def _log_paired(evaluations: dict[str, str], strategies, seeds, metric: str, site: str, classes,
                n_boot: int, seed: int) -> pd.DataFrame:
    """Each arm minus the baseline at the site, paired on the same resampled patients
    (``comparison_paired.md/.csv``; the parent's ``<arm>_<site>_<metric>_diff`` with ``_lo`` and
    ``_hi``): on a small set, the test that each arm's own interval is too wide to give."""
    read = {label: read_site_predictions(run, classes) for label, run in evaluations.items()}
    first = next(iter(read.values()))
    if any(p.paths != first.paths for p in read.values()):
        raise XrayTrackError(f"the evaluations at {site} did not score the same images")
    arms_probs = {s: [read[arm_label(s, n)].probs for n in (seeds or (None,))] for s in strategies}
    gains = paired.differences(first.y, arms_probs, classes, metric, strategies[0], n_boot, seed,
                               first.groups)
    unit = "patients" if first.groups is not None else "images"
    mlflow.log_text(gains.to_csv(), "comparison_paired.csv")
    mlflow.log_text(
        f"# Each arm against `{strategies[0]}` at {site}, paired\n\n"
        f"{metric} of each arm minus that of `{strategies[0]}`, on {n_boot} resamples of the "
        f"site's {unit} shared by every arm"
        + (" (each arm's score the mean over its seeds)" if seeds else "") + ".\n\n"
        + paired.to_markdown(gains, strategies[0], metric), "comparison_paired.md")
    tag = metrics.metric_name(site)
    mlflow.log_metrics({f"{metrics.metric_name(s)}_{tag}_{metric}_diff{end}": gains.at[s, column]
                        for s in gains.index
                        for end, column in (("", "difference"), ("_lo", "lo"), ("_hi", "hi"))
                        if gains.at[s, column] == gains.at[s, column]})
    return gains


def _log_tradeoff(table, external, strategies, seeds, select_metric: str, external_metric: str,
                  tolerance: float, site: str, gains: pd.DataFrame | None = None) -> None:
    """Name the arm that keeps the internal score and raises the site's (tag, param and
    ``tradeoff.md``). With seeds, each arm's scores are its means over seeds and its spread the
    range of its seeds' values. ``gains`` (``paired.differences``) adds the paired reading."""
    if seeds:
        groups = {s: [arm_label(s, seed) for seed in seeds] for s in strategies}
        internal = pd.Series({s: table.loc[g, select_metric].mean() for s, g in groups.items()})
        values = {s: external.loc[g, external_metric] if external_metric in external.columns
                  else pd.Series(dtype=float) for s, g in groups.items()}
        external = pd.DataFrame({external_metric: {s: v.mean() for s, v in values.items()},
                                 f"{external_metric}_lo": {s: v.min() for s, v in values.items()},
                                 f"{external_metric}_hi": {s: v.max() for s, v in values.items()}})
        spread = "ranges over seeds"
    else:
        internal, spread = table.loc[list(strategies), select_metric], "95% intervals"
    best, sentence = comparison.tradeoff(internal, external, external_metric, strategies[0],
                                         tolerance, spread)
    if gains is not None and best is not None:  # the arm named's paired reading, and the best outside's
        for arm in dict.fromkeys((best, comparison.best_outside(external, external_metric))):
            if arm in gains.index:
                sentence += " " + paired.describe(gains, arm, strategies[0], external_metric)
    more = "\nEvery arm against the baseline, paired: `comparison_paired.md`.\n" if gains is not None else ""
    mlflow.log_text(f"# Inside the database and at {site}\n\n{sentence}\n{more}", "tradeoff.md")
    if best is not None:
        mlflow.set_tag("xraytrack.best_tradeoff_strategy", best)
        mlflow.log_param("compare.best_tradeoff_strategy", best)
    print(sentence)


def _log_audit(children: dict[str, str]) -> None:
    """Each arm's shortcut audit beside the others (``comparison_audit.md``): skill left when the
    lungs are removed is what a shortcut buys. Point values on the audit's sample of test images."""
    names = ("audit_plain_balanced_accuracy", "audit_lungs_removed_balanced_accuracy",
             "audit_lungs_removed_macro_auc", "audit_lungs_removed_retained_skill",
             "audit_gradcam_lung_share")
    logged = {label: mlflow.get_run(run).data.metrics for label, run in children.items()}
    if not any(names[1] in m for m in logged.values()):
        return
    lines = ["| arm | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(_audit_cell(m, n) for n in names) + " |"
              for label, m in logged.items()]
    mlflow.log_text("# Shortcut audit of each arm\n\nThe test split re-scored with the lungs "
                    "filled in (`lungs_removed`): skill that survives is a shortcut's. 95% "
                    "bootstrap intervals where the child logged them; see each child's "
                    "`audit.md`.\n\n" + "\n".join(lines) + "\n", "comparison_audit.md")


def _audit_cell(logged: dict[str, float], name: str) -> str:
    if name not in logged:
        return "n/a"
    if f"{name}_lo" not in logged:
        return f"{logged[name]:.3f}"
    return f"{logged[name]:.3f} [{logged[name + '_lo']:.3f}, {logged[name + '_hi']:.3f}]"
