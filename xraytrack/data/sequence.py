"""Batches straight from the uint8 cache, as a Keras PyDataset so any Keras backend can train on it."""

from __future__ import annotations

import math

import keras
import numpy as np


class CachedImages(keras.utils.PyDataset):
    """Yield ``(images, one_hot)`` batches of cache ``rows`` with their ``labels``.

    Unshuffled, batches follow ``rows`` exactly, so predictions line up with the manifest (the
    seed project read labels in file order from a shuffled iterator and scored noise).
    ``order_fn(epoch)`` may replace the seeded per-epoch shuffle, e.g. to draw balanced batches;
    it returns positions into ``rows``, repeats allowed.

    ``shard=(i, n)``: process ``i`` of ``n`` training together over several hosts yields only its
    contiguous ``1/n`` of every batch; the other processes yield the rest, so together they see
    the batches of one process. Each epoch then leaves out its last ``len % n`` images (at most
    ``n - 1``) so that the last batch splits evenly too.
    """

    def __init__(self, pixels, rows, labels, num_classes: int, batch_size: int,
                 shuffle: bool = False, seed: int = 0, order_fn=None,
                 shard: tuple[int, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.pixels = pixels
        self.rows = np.asarray(rows)
        self.labels = np.asarray(labels)
        if len(self.rows) != len(self.labels):
            raise ValueError("rows and labels must be aligned")
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.order_fn = order_fn
        self.shard = shard
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if self.order_fn is not None:
            order = np.asarray(self.order_fn(self.epoch))
        elif self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))
        else:
            order = np.arange(len(self.rows))
        if self.shard:
            order = order[: len(order) - len(order) % self.shard[1]]
        return order

    def __len__(self) -> int:
        return math.ceil(len(self._order) / self.batch_size)

    def __getitem__(self, batch: int):
        positions = self._order[batch * self.batch_size : (batch + 1) * self.batch_size]
        if self.shard:
            index, count = self.shard
            share = len(positions) // count
            positions = positions[index * share : (index + 1) * share]
        if self.shuffle or self.order_fn is not None:
            # Order within a batch is irrelevant to training; the memmap reads fastest sorted.
            positions = positions[np.argsort(self.rows[positions], kind="stable")]
        x = self.pixels[self.rows[positions]]
        y = keras.utils.to_categorical(self.labels[positions], self.num_classes)
        return x[..., None].astype("float32"), y

    def start_at_epoch(self, epoch: int) -> None:
        """A resumed run continues with epoch ``epoch``'s order, not epoch 0's again."""
        self.epoch = epoch
        self._order = self._epoch_order()

    def on_epoch_end(self):
        self.start_at_epoch(self.epoch + 1)
