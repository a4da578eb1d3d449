"""Decode every image once into an on-disk uint8 array; every epoch after that reads the array.

The cache lives under the user's cache directory (never inside ``data_dir``, which may be
read-only), is keyed by the files' names, sizes and modification times plus the image size, and
is built in chunks so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from numpy.lib.format import open_memmap

from xraytrack.data import dedup
from xraytrack.data.images import DECODE_ERRORS, load_grayscale, resize
from xraytrack.data.index import DatasetIndex

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CHUNK = 512


def default_cache_dir() -> Path:
    if env := os.environ.get("XRAYTRACK_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xraytrack"


@dataclass(frozen=True)
class ImageCache:
    """``pixels[i]`` is image ``i`` of the index; ``errors[i]`` says why it could not be read."""

    pixels: np.ndarray  # (N, size, size) uint8, memory-mapped
    hashes: np.ndarray  # (N, dedup.HASH_BITS) bool, from the full-resolution image
    errors: dict[int, str]

    @property
    def readable(self) -> np.ndarray:
        ok = np.ones(len(self.pixels), dtype=bool)
        ok[list(self.errors)] = False
        return ok


def cache_key(index: DatasetIndex, size: int) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}".encode())
    for rel in index.paths:
        st = (index.root / rel).stat()
        h.update(f"|{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


@contextmanager
def _locked(path: Path):
    """One builder per cache entry, even with several tuner workers on one machine."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _decode(path: Path, size: int):
    try:
        gray = load_grayscale(path)
    except DECODE_ERRORS as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    return resize(gray, size), dedup.perceptual_hash(gray), None


def _build(index: DatasetIndex, size: int, work: Path, workers: int) -> None:
    n = len(index.paths)
    mode = "r+" if (work / "pixels.npy").exists() else "w+"
    pixels = open_memmap(work / "pixels.npy", mode=mode, dtype=np.uint8, shape=(n, size, size))
    progress = work / "progress.npz"
    if progress.exists():
        state = np.load(progress, allow_pickle=False)
        done, hashes = int(state["done"]), state["hashes"]
        errors = json.loads(str(state["errors"]))
    else:
        done, hashes, errors = 0, np.zeros((n, dedup.HASH_BITS), dtype=bool), {}
    print(f"Caching {n} images at {size}px in {work.parent} ({done} already done)")
    bar = keras.utils.Progbar(n, unit_name="image")
    bar.update(done)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(done, n, CHUNK):
            stop = min(start + CHUNK, n)
            files = [index.root / p for p in index.paths[start:stop]]
            for i, (img, bits, err) in enumerate(pool.map(_decode, files, [size] * len(files))):
                if err is None:
                    pixels[start + i], hashes[start + i] = img, bits
                else:
                    errors[str(start + i)] = err
            pixels.flush()
            tmp = work / "progress.tmp.npz"
            np.savez(tmp, done=stop, hashes=hashes, errors=json.dumps(errors))
            os.replace(tmp, progress)
            bar.update(stop)
    del pixels


def load_or_build(
    index: DatasetIndex, size: int, cache_dir: str | Path | None = None, workers: int | None = None
) -> ImageCache:
    """Return the cache for ``index`` at ``size`` px, decoding what is not cached yet."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{size}px-{cache_key(index, size)}"
    with _locked(root / f"{final.name}.lock"):
        if not (final / "progress.npz").exists():
            work = final.with_name(final.name + ".partial")
            work.mkdir(exist_ok=True)
            _build(index, size, work, workers or os.cpu_count() or 1)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(work, final)
    state = np.load(final / "progress.npz", allow_pickle=False)
    errors = {int(k): v for k, v in json.loads(str(state["errors"])).items()}
    for i, reason in errors.items():
        log.warning("skipping unreadable image %s: %s", index.paths[i], reason)
    pixels = np.load(final / "pixels.npy", mmap_mode="r")
    return ImageCache(pixels=pixels, hashes=state["hashes"], errors=errors)
