import numpy as np
import pandas as pd
import pytest

from xraytrack.evaluation.comparison import compare, summary, to_markdown, tradeoff
from xraytrack.evaluation.metrics import score_names, scores, sensitivity_at_specificity

CLASSES = ("COVID", "Normal", "Viral Pneumonia")


def _predictions(rng, y, skill):
    """Probabilities that put `skill` extra mass on the true class."""
    probs = rng.dirichlet(np.ones(3), size=len(y)) + skill * np.eye(3)[y]
    return probs / probs.sum(axis=1, keepdims=True)


def test_score_names_are_the_advertised_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    assert set(scores(y, _predictions(rng, y, 1.0), CLASSES)) == set(score_names(CLASSES))
    assert "covid_sens_at_95_spec" not in score_names(("Normal", "Lung_Opacity"))


def test_the_table_holds_the_scoring_functions_own_numbers():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    probs = _predictions(rng, y, 0.8)
    table = compare({"only": (y, probs)}, CLASSES, n_boot=20, seed=0)
    for metric, value in scores(y, probs, CLASSES).items():
        assert table.at["only", metric] == value


def test_sensitivity_at_specificity():
    positive = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.3, 0.2] + [0.1] * 18 + [0.85, 0.25])
    # threshold 0.3 lets one of 20 negatives through (5%: allowed) and catches three positives;
    # 0.2 would let two through (10%)
    assert sensitivity_at_specificity(positive, score) == 0.75
    assert sensitivity_at_specificity(positive, score, specificity=1.0) == 0.25


def test_intervals_bracket_the_point_and_separate_a_good_model_from_a_bad_one():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    table = compare({"good": (y, _predictions(rng, y, 2.0)), "bad": (y, _predictions(rng, y, 0.1))},
                    CLASSES, n_boot=300, seed=0)
    for strategy in table.index:
        for m in ("macro_f1", "auc_covid", "covid_sens_at_95_spec"):
            assert table.at[strategy, f"{m}_lo"] <= table.at[strategy, m] <= table.at[strategy, f"{m}_hi"]
    assert table.at["good", "macro_f1_lo"] > table.at["bad", "macro_f1_hi"]
    text = summary(table, CLASSES, baseline="bad")
    assert "COVID: recall best with `good`" in text and "do not overlap" in text
    assert "| macro_f1 | " in to_markdown(table)


def test_strategies_must_share_the_test_split():
    y = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="same test split"):
        compare({"a": (y, np.eye(3)[y]), "b": (y[:3], np.eye(3)[y[:3]])}, CLASSES, n_boot=10)


def test_tradeoff_names_the_best_outside_among_the_arms_kept_inside():
    internal = pd.Series({"none": 0.90, "crop": 0.89, "equalize": 0.80})
    external = pd.DataFrame({"auc_covid": [0.60, 0.85, 0.95], "auc_covid_lo": [0.50, 0.75, 0.90],
                             "auc_covid_hi": [0.70, 0.93, 0.99]},
                            index=["none", "crop", "equalize"])
    best, sentence = tradeoff(internal, external, "auc_covid", "none", tolerance=0.02)
    assert best == "crop"  # equalize is better outside but lost 0.10 inside
    assert "do not overlap" in sentence
    external.loc["crop", "auc_covid_lo"] = 0.65
    assert "overlap, so the gain is not resolved" in tradeoff(internal, external, "auc_covid",
                                                              "none", 0.02)[1]
    assert "`equalize`'s, 0.950 [0.900, 0.990], at an internal cost of 0.100" in tradeoff(
        internal, external, "auc_covid", "none", 0.02)[1]
    assert tradeoff(internal, external, "auc_covid", "none", tolerance=0.2)[0] == "equalize"
    assert "internal cost" not in tradeoff(internal, external, "auc_covid", "none", 0.2)[1]
    assert tradeoff(internal, external, "auc_normal", "none", 0.02)[0] is None


def test_a_one_arm_comparison_names_no_tradeoff_and_reports_the_arm():
    internal = pd.Series({"border_crop": 0.929})
    external = pd.DataFrame({"auc_covid": [0.68], "auc_covid_lo": [0.65], "auc_covid_hi": [0.73]},
                            index=["border_crop"])
    best, sentence = tradeoff(internal, external, "auc_covid", "border_crop", 0.02,
                              "ranges over seeds")
    assert best is None
    assert sentence.startswith("One arm, so nothing to trade off: `border_crop` scores auc_covid "
                               "0.680 [0.650, 0.730] outside (ranges over seeds) and 0.929 inside")
    assert " vs " not in sentence


def test_when_no_arm_is_kept_inside_the_tradeoff_still_names_the_best_outside_and_its_cost():
    internal = pd.Series({"none": 0.955, "border_crop": 0.934, "lung_crop": 0.926})
    external = pd.DataFrame({"auc_covid": [0.53, 0.75, 0.70], "auc_covid_lo": [0.52, 0.69, 0.65],
                             "auc_covid_hi": [0.55, 0.83, 0.73]},
                            index=["none", "border_crop", "lung_crop"])
    best, sentence = tradeoff(internal, external, "auc_covid", "none", 0.02, "ranges over seeds")
    assert best == "none"
    assert "no arm kept inside beats `none` outside (brackets: ranges over seeds)" in sentence
    assert ("highest external auc_covid of any arm is `border_crop`'s, 0.750 [0.690, 0.830], "
            "at an internal cost of 0.021 (more than the 0.02 allowed)") in sentence
