import numpy as np
import pytest
from conftest import make_dataset

from xraytrack.data.index import index_dataset
from xraytrack.errors import XrayTrackError


def test_kaggle_layout_reads_images_never_masks_or_metadata(dataset):
    index = index_dataset(dataset)
    assert index.classes == ("COVID", "Normal", "Viral Pneumonia")
    assert all("/images/" in p for p in index.paths)
    assert not any("masks" in p or p.endswith(".xlsx") for p in index.paths)
    # 24 per class plus five extra files in COVID (corrupt, RGBA, 16-bit, JPEG, duplicate)
    assert index.counts() == {"COVID": 29, "Normal": 24, "Viral Pneumonia": 24}


def test_flat_layout(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=3, extras=False)
    for cls in root.iterdir():
        if cls.is_dir():
            for f in (cls / "images").iterdir():
                f.rename(cls / f.name)
            (cls / "images").rmdir()
    index = index_dataset(root)
    assert index.counts() == {"COVID": 3, "Normal": 3, "Viral Pneumonia": 3}


def test_class_subset_fixes_label_order(dataset):
    index = index_dataset(dataset, classes=["Normal", "COVID"])
    assert index.classes == ("Normal", "COVID")
    assert all(p.startswith("Normal/") for p in np.asarray(index.paths)[index.labels == 0])


def test_limit_per_class_is_a_seeded_sample(dataset):
    a = index_dataset(dataset, limit_per_class=5, seed=1)
    b = index_dataset(dataset, limit_per_class=5, seed=1)
    c = index_dataset(dataset, limit_per_class=5, seed=2)
    assert a.paths == b.paths and a.paths != c.paths
    assert set(a.counts().values()) == {5}


@pytest.mark.parametrize(
    "make_problem, message",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root.parent, "did you mean"),
    ],
)
def test_bad_paths_get_clear_errors(dataset, make_problem, message):
    with pytest.raises(XrayTrackError, match=message):
        index_dataset(make_problem(dataset))


def test_unknown_and_empty_classes_are_errors(dataset):
    with pytest.raises(XrayTrackError, match="unknown class 'Lung_Opacity'.*found: COVID"):
        index_dataset(dataset, classes=["COVID", "Lung_Opacity"])
    (dataset / "Empty" / "images").mkdir(parents=True)
    with pytest.raises(XrayTrackError, match="class 'Empty' has no images"):
        index_dataset(dataset, classes=["COVID", "Empty"])
    assert "Empty" not in index_dataset(dataset).classes  # discovered: skipped with a warning


def test_a_masks_folder_is_never_a_class(tmp_path):
    root = make_dataset(tmp_path / "d", n_per_class=2, extras=False)
    (root / "masks").mkdir()
    (root / "masks" / "x.png").write_bytes((root / "COVID" / "masks" / "COVID-0.png").read_bytes())
    assert "masks" not in index_dataset(root).classes
