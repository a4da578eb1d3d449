import numpy as np
import pytest

from xraytrack.errors import XrayTrackError
from xraytrack.training.balancing import STRATEGIES, balanced_class_weight, check_strategies, epoch_order

LABELS = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_unknown_strategies_list_the_valid_ones():
    with pytest.raises(XrayTrackError, match="unknown balancing strategy 'smote'; valid: none, "
                                             "class_weight, oversample, undersample, balanced_batches"):
        check_strategies(["none", "smote"])
    assert check_strategies(STRATEGIES) == STRATEGIES


def test_oversample_and_undersample_equalise_class_counts_and_redraw_each_epoch():
    over, under = epoch_order("oversample", LABELS, 16, 0), epoch_order("undersample", LABELS, 16, 0)
    assert np.bincount(LABELS[over(0)]).tolist() == [60, 60, 60]
    assert np.bincount(LABELS[under(0)]).tolist() == [10, 10, 10]
    assert set(under(0)) != set(under(1))  # other majority images next epoch
    assert set(over(0)) >= set(range(len(LABELS)))  # every image still seen when oversampling


def test_balanced_batches_are_balanced_batch_by_batch():
    order = epoch_order("balanced_batches", LABELS, 12, 0)(0)
    assert len(order) == 9 * 12  # as many batches as an ordinary epoch of 100 images
    for b in range(9):
        assert np.bincount(LABELS[order[b * 12:(b + 1) * 12]], minlength=3).tolist() == [4, 4, 4]


def test_plain_strategies_keep_the_ordinary_shuffle():
    assert epoch_order("none", LABELS, 16, 0) is None
    assert epoch_order("class_weight", LABELS, 16, 0) is None


def test_balanced_class_weights_undo_the_imbalance():
    w = balanced_class_weight(LABELS, 4)
    assert w[0] * 60 == pytest.approx(w[1] * 30) == pytest.approx(w[2] * 10)
    assert w[3] == 0.0  # a class absent from training gets no weight
