"""tf.data pipelines: shuffle, batch, augment in parallel, add boundary targets, normalize.

A training epoch is a pure function of (seed, epoch): the shuffle order and every batch's
augmentation seed are derived from them, so a resumed run sees exactly the batches the
uninterrupted run would have seen.

Batches are dicts: ``image`` float32 [B, H, W, C] normalized, ``mask`` float32 [B, H, W, 1]
in {0, 1}, ``band`` float32 [B, H, W, 1] (training only), ``alpha`` [B, H, W, 1] (when the
dataset has mattes) and ``rgb`` [B, H, W, 3] in 0..1 (with ``alpha``, for the composition
loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness import tfcompat
from harness.train import augment as aug
from harness.train.data import Dataset
from harness.train.losses import boundary_band


@dataclass
class Pipeline:
    dataset: Dataset
    batch_size: int
    normalization: Mapping[str, Sequence[float]]
    seed: int = 0
    augmentations: Iterable[str] = ()
    thicknesses: Sequence[int] = ()  # empty: no band target
    use_alpha: bool = False
    replicas: int = 1  # a shuffled (training) epoch drops a last batch smaller than this
    _base: object = field(default=None, init=False, repr=False)

    @property
    def steps(self) -> int:
        """Batches in a training epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest >= self.replicas else 0)

    def _source(self):
        tf = tfcompat.tf()
        if self._base is None:
            labels = self.dataset.masks[..., None].astype(np.uint8) * np.uint8(255)
            if self.use_alpha and self.dataset.alphas is not None:
                labels = np.concatenate([labels, self.dataset.alphas[..., None]], axis=-1)
            self._base = tf.data.Dataset.from_tensor_slices((self.dataset.images, labels))
        return self._base

    def _finish(self, images, labels):
        """float 0..255 images + 0..1 labels -> the batch dict."""
        tf = tfcompat.tf()
        _, h, w, c = self.dataset.images.shape
        images = tf.ensure_shape(images, [None, h, w, c])
        labels = tf.ensure_shape(labels, [None, h, w, labels.shape[-1]])
        mean = tf.constant(self.normalization["mean"], tf.float32)
        std = tf.constant(self.normalization["std"], tf.float32)
        mask = tf.cast(labels[..., :1] >= 0.5, tf.float32)
        batch = {"image": (images - mean) / std, "mask": mask}
        if self.thicknesses:
            thick = tuple(self.thicknesses)
            band = tf.numpy_function(
                lambda m: boundary_band(m, thick), [mask], tf.float32, stateful=False
            )
            batch["band"] = tf.ensure_shape(band[..., None], mask.shape)
        if self.use_alpha and labels.shape[-1] > 1:
            batch["alpha"] = labels[..., 1:2]
            batch["rgb"] = images[..., :3] / 255.0
        return batch

    def epoch(self, epoch: int, *, shuffle: bool = True):
        """The batches of one epoch (1-based), shuffled and augmented from (seed, epoch)."""
        tf = tfcompat.tf()
        ds = self._source()
        if shuffle:
            ds = ds.shuffle(
                len(self.dataset), seed=self.seed * 100_003 + epoch, reshuffle_each_iteration=False
            )
        ds = ds.batch(self.batch_size)
        if shuffle and self.replicas > 1:
            # Every replica needs at least one image (batch norm on an empty batch is NaN).
            ds = ds.filter(lambda images, _: tf.shape(images)[0] >= self.replicas)
        ds = ds.enumerate()
        enabled = frozenset(self.augmentations)
        base_seed = tf.constant([self.seed, epoch], tf.int64)

        @tf.autograph.experimental.do_not_convert
        def prepare(index, pair):
            images, labels = pair
            images = tf.cast(images, tf.float32)
            labels = tf.cast(labels, tf.float32) / 255.0
            if enabled:
                seed = tf.random.experimental.stateless_fold_in(base_seed, index)
                images, labels = aug.augment(images, labels, seed, enabled)
            return self._finish(images, labels)

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)
