import numpy as np
import pytest
from conftest import make_dataset

from xraytrack.data.dedup import group_near_duplicates, perceptual_hash
from xraytrack.data.index import index_dataset
from xraytrack.data.split import _fold_count, make_split
from xraytrack.errors import XrayTrackError


def _index(tmp_path, n=40):
    return index_dataset(make_dataset(tmp_path / "d", n_per_class=n, extras=False))


def test_same_data_and_seed_give_the_identical_split(tmp_path):
    index = _index(tmp_path)
    groups = np.arange(len(index.paths))
    a, b = make_split(index, groups, seed=3), make_split(index, groups, seed=3)
    assert a.to_csv() == b.to_csv() and a.digest() == b.digest()
    assert make_split(index, groups, seed=4).digest() != a.digest()


def test_splits_are_disjoint_stratified_and_sized(tmp_path):
    index = _index(tmp_path)
    split = make_split(index, np.arange(len(index.paths)), seed=0)
    parts = [set(split.indices(s)) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(index.paths) == len(set.union(*parts))
    for name, fraction in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        for cls, n in split.counts()[name].items():
            assert abs(n - 40 * fraction) <= 2, (name, cls, n)


def test_a_duplicate_group_never_straddles_splits(tmp_path):
    index = _index(tmp_path)
    groups = np.arange(len(index.paths)) // 4  # groups of four images
    split = make_split(index, groups, seed=0)
    for g in np.unique(groups):
        assert len(set(split.assignment[groups == g])) == 1


def test_csv_manifest_columns(tmp_path):
    index = _index(tmp_path, n=20)
    split = make_split(index, np.arange(len(index.paths)))
    lines = split.to_csv().splitlines()
    assert lines[0] == "path,class,split,group"
    path, cls, name, _ = lines[1].split(",")
    assert path.startswith(cls + "/images/") and name in ("train", "val", "test")


def test_fractions_become_whole_folds():
    assert _fold_count(0.15, 0.15) == (20, 3, 3)
    assert _fold_count(0.1, 0.2) == (10, 1, 2)
    with pytest.raises(XrayTrackError):
        _fold_count(0.5, 0.5)


def test_too_little_data_is_a_clear_error(tmp_path):
    index = _index(tmp_path, n=3)
    with pytest.raises(XrayTrackError, match="too few"):
        make_split(index, np.arange(len(index.paths)))


def test_near_duplicates_share_a_group_and_distinct_images_do_not():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    b = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    a_copy = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)  # brightness shift
    hashes = np.stack([perceptual_hash(x) for x in (a, b, a_copy)])
    groups = group_near_duplicates(hashes)
    assert groups[0] == groups[2] != groups[1]


def test_a_class_smaller_than_the_folds_is_noted_once_in_our_words(tmp_path, caplog):
    import warnings

    root = make_dataset(tmp_path / "d", n_per_class=30, extras=False)
    for f in sorted((root / "Normal" / "images").iterdir())[12:]:
        f.unlink()  # 12 Normal images for 20 folds, as an external site's small class
    index = index_dataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's own warning would fail here
        split = make_split(index, np.arange(len(index.paths)), seed=0)
    assert [r.getMessage() for r in caplog.records] == [
        "class 'Normal' has 12 images, fewer than the split's 20 folds: its val and test counts "
        "are rounded more coarsely"]
    assert sum(split.counts()[s]["Normal"] for s in ("train", "val", "test")) == 12
