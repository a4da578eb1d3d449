import os
import stat

import numpy as np
import pytest

from xraytrack.data import cache as cache_mod
from xraytrack.data.cache import load_or_build
from xraytrack.data.index import index_dataset
from xraytrack.data.prepare import prepare


def test_cache_decodes_once_and_records_unreadable_files(dataset, tmp_path, monkeypatch):
    index = index_dataset(dataset)
    c = load_or_build(index, 32, tmp_path / "c")
    assert c.pixels.shape == (len(index.paths), 32, 32) and c.pixels.dtype == np.uint8
    bad = [index.paths[i] for i in c.errors]
    assert bad == ["COVID/images/corrupt.png"]
    assert "Error" in c.errors[index.paths.index("COVID/images/corrupt.png")]
    calls = []
    monkeypatch.setattr(cache_mod, "_decode", lambda *a: calls.append(a))
    again = load_or_build(index, 32, tmp_path / "c")
    assert calls == [] and np.array_equal(again.pixels, c.pixels)


def test_interrupted_build_resumes_where_it_stopped(dataset, tmp_path, monkeypatch):
    index = index_dataset(dataset)
    monkeypatch.setattr(cache_mod, "CHUNK", 8)
    real, seen = cache_mod._decode, []

    def flaky(path, size):
        if len(seen) == 20:
            raise KeyboardInterrupt
        seen.append(path)
        return real(path, size)

    monkeypatch.setattr(cache_mod, "_decode", flaky)
    with pytest.raises(KeyboardInterrupt):
        load_or_build(index, 32, tmp_path / "c", workers=1)
    redone = []
    monkeypatch.setattr(cache_mod, "_decode", lambda p, s: (redone.append(p), real(p, s))[1])
    resumed = load_or_build(index, 32, tmp_path / "c", workers=1)
    # the two finished chunks (16 images) are kept; only the rest is decoded, once each
    assert len(redone) == len(set(redone)) == len(index.paths) - 16
    reference = load_or_build(index, 32, tmp_path / "fresh")
    assert np.array_equal(resumed.pixels, reference.pixels)


def test_read_only_data_dir_is_fine(dataset, tmp_path):
    for path, dirs, files in os.walk(dataset):
        for name in files:
            os.chmod(os.path.join(path, name), stat.S_IRUSR)
    index = index_dataset(dataset)
    data = prepare(index, 32, 0.15, 0.15, 0, 10, str(tmp_path / "c"))
    assert len(data.skipped) == 1 and not any(dataset.rglob("*.npy"))


def test_prepare_groups_the_planted_near_duplicate(dataset, tmp_path):
    data = prepare(index_dataset(dataset), 32, 0.15, 0.15, 0, 10, str(tmp_path / "c"))
    paths = list(data.split.index.paths)
    groups = data.split.groups
    dup, original = paths.index("COVID/images/near-duplicate.png"), paths.index("COVID/images/COVID-0.png")
    assert groups[dup] == groups[original]
    assert data.split.assignment[dup] == data.split.assignment[original]
    assert len(np.unique(groups)) == len(paths) - 1
