"""Where the lungs are in each image: the dataset's own mask when it has one, else a fixed box.

Kaggle's download has one lung mask per image in ``<Class>/masks/`` (white lungs on black, named
like the image, sometimes with different case, separators or extension: ``NORMAL-1.png`` for
``Normal-1.jpg``). Without a mask the lung region is the fixed central box
``FALLBACK_BOX`` (fractions of height and width), which holds both lungs of a typical frontal
CXR: on the masks of this database the lungs lie within rows 0.13-0.78 and columns 0.14-0.88.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize

log = logging.getLogger(__name__)

FALLBACK_BOX = (0.12, 0.82, 0.12, 0.88)  # top, bottom, left, right


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", Path(name).stem.lower())


def mask_files(root: Path, class_names) -> dict[str, Path]:
    """Normalised '<class>/<stem>' -> mask file, for every mask folder of the dataset."""
    found = {}
    for cls in class_names:
        folder = root / cls / "masks"
        if folder.is_dir():
            for f in folder.iterdir():
                found[f"{cls}/{_key(f.name)}"] = f
    return found


def lung_box(root: Path, class_names, limit: int = 500, seed: int = 0) -> tuple[tuple, int]:
    """(box, n_masks): one box (top, bottom, left, right, as fractions) holding the lungs of
    nearly every image, from up to ``limit`` of the dataset's masks (a seeded sample), or
    ``FALLBACK_BOX`` and 0 without masks.

    One box for all images, because a model has no mask for a new image at inference: the box
    from the 2nd to the 98th percentile of the masks' own bounding boxes, widened by 0.02."""
    files = sorted(mask_files(root, class_names).values())
    if len(files) > limit:
        files = [files[i] for i in sorted(np.random.default_rng(seed).choice(len(files), limit,
                                                                             replace=False))]
    boxes = []
    for f in files:
        try:
            lungs = load_grayscale(f) > 127
        except DECODE_ERRORS as exc:
            log.warning("unreadable mask %s (%s): left out of the lung box", f, exc)
            continue
        rows, cols = np.flatnonzero(lungs.any(axis=1)), np.flatnonzero(lungs.any(axis=0))
        if len(rows):
            h, w = lungs.shape
            boxes.append((rows[0] / h, (rows[-1] + 1) / h, cols[0] / w, (cols[-1] + 1) / w))
    if not boxes:
        return FALLBACK_BOX, 0
    b = np.asarray(boxes)
    low, high = np.percentile(b[:, [0, 2]], 2, axis=0) - 0.02, np.percentile(b[:, [1, 3]], 98, axis=0) + 0.02
    top, left = np.clip(low, 0.0, 1.0)
    bottom, right = np.clip(high, 0.0, 1.0)
    return (round(float(top), 3), round(float(bottom), 3), round(float(left), 3),
            round(float(right), 3)), len(boxes)


def fallback_region(size: int) -> np.ndarray:
    top, bottom, left, right = FALLBACK_BOX
    region = np.zeros((size, size), dtype=bool)
    region[round(top * size):round(bottom * size), round(left * size):round(right * size)] = True
    return region


def lung_regions(root: Path, paths: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(regions, from_mask): a boolean lung region per image, and whether a real mask gave it."""
    masks = mask_files(root, {p.split("/", 1)[0] for p in paths})
    regions = np.empty((len(paths), size, size), dtype=bool)
    from_mask = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        mask = masks.get(f"{path.split('/', 1)[0]}/{_key(path)}")
        regions[i] = fallback_region(size)
        if mask is not None:
            try:
                regions[i] = resize(load_grayscale(mask), size) > 127
                from_mask[i] = True
            except DECODE_ERRORS as exc:
                log.warning("unreadable mask %s (%s): using the fallback box", mask, exc)
    return regions, from_mask


def occlude(images: np.ndarray, regions: np.ndarray, keep: str) -> np.ndarray:
    """Fill the lungs (keep='outside') or everything but the lungs (keep='lungs') with each
    image's mean, removing that region's information without adding an edge of black."""
    out = images.astype(np.float32).copy()
    means = out.reshape(len(out), -1).mean(axis=1)
    fill = regions if keep == "outside" else ~regions
    for i in range(len(out)):
        out[i][fill[i]] = means[i]
    return out
