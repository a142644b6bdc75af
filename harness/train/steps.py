"""The compiled train and eval steps of a run, replicated by a tf.distribute strategy.

Each replica computes the loss terms on its share of the global batch; its loss is weighted
by ``n_replica / n_global`` so that the gradients, summed over replicas by the optimizer, are
the gradients of the global batch mean (exactly the one-device step when there is one
replica). Model outputs are cast to float32 before any loss (mixed precision computes the
layers in float16), and under mixed precision the loss is scaled by the optimizer
(``LossScaleOptimizer``) so float16 gradients do not underflow.
"""

from __future__ import annotations

import time
from typing import Any

from harness import tfcompat
from harness.train import losses, metrics
from harness.train.pipeline import Pipeline
from harness.train.progress import EpochProgress


def make_optimizer(learning_rate, mixed_precision: bool):
    """Adam, wrapped in a dynamic ``LossScaleOptimizer`` under mixed precision."""
    keras = tfcompat.keras()
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if mixed_precision:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


class Steps:
    """``train(batch)`` and ``eval(batch)`` over distributed batches of one strategy."""

    def __init__(self, config, built, optimizer, strategy, train_spec, val_spec, mixed=False):
        tf = tfcompat.tf()
        self.config, self.nets, self.optimizer = config, built, optimizer
        self.strategy, self.mixed = strategy, mixed
        self.train = tf.function(self._train, input_signature=[train_spec], autograph=False)
        self.eval = tf.function(self._eval, input_signature=[val_spec], autograph=False)

    def distribute(self, dataset):
        """Batches of ``dataset`` split across the strategy's replicas."""
        return self.strategy.experimental_distribute_dataset(dataset)

    def _terms(self, outputs, batch) -> dict[str, Any]:
        cfg = self.config
        logits = outputs[0]
        terms = {"seg_loss": losses.segmentation_loss(cfg.loss, logits, batch["mask"])}
        if cfg.boundary_weight > 0 and "band" in batch:
            if self.nets.arch.boundary_head:
                terms["boundary_loss"] = losses.boundary_loss(outputs[1], batch["band"])
            else:
                terms["boundary_loss"] = losses.band_cross_entropy(
                    logits, batch["mask"], batch["band"]
                )
        if cfg.matting_weight and "alpha" in batch:
            terms["matting_loss"] = losses.matting_loss(logits, batch["alpha"], batch["rgb"])
        total = terms["seg_loss"]
        total += cfg.boundary_weight * terms.get("boundary_loss", 0.0)
        total += (cfg.matting_weight or 0.0) * terms.get("matting_loss", 0.0)
        terms["loss"] = total
        return terms

    def _replica_train(self, batch):
        tf = tfcompat.tf()
        model = self.nets.training
        n = tf.cast(tf.shape(batch["mask"])[0], tf.float32)
        share = n / tf.distribute.get_replica_context().all_reduce("SUM", n)
        with tf.GradientTape() as tape:
            outputs = model(batch["image"], training=True)
            if not isinstance(outputs, (list, tuple)):  # a one-output model returns a tensor
                outputs = [outputs]
            outputs = [tf.cast(o, tf.float32) for o in outputs]
            terms = self._terms(outputs, batch)
            loss = terms["loss"] * share
            if self.mixed:
                loss = self.optimizer.get_scaled_loss(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        if self.mixed:
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return {**{k: v * share for k, v in terms.items()}, "images": n}

    def _train(self, batch):
        """Global-batch means of the loss terms, plus ``images`` (the global batch size)."""
        per_replica = self.strategy.run(self._replica_train, args=(batch,))
        return {k: self.strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}

    def _replica_eval(self, batch):
        tf = tfcompat.tf()
        logits = tf.cast(self.nets.inference(batch["image"], training=False), tf.float32)
        n = tf.cast(tf.shape(logits)[0], tf.float32)
        loss = losses.segmentation_loss(self.config.loss, logits, batch["mask"]) * n
        # A replica can get an empty share of the last batch: its loss is 0, not NaN.
        loss = tf.where(n > 0, loss, tf.zeros_like(loss))
        return loss, metrics.counts(logits, batch["mask"]), n

    def _eval(self, batch):
        """(summed segmentation loss, summed IoU counts, images) over the global batch."""
        out = self.strategy.run(self._replica_eval, args=(batch,))
        return tuple(self.strategy.reduce("SUM", v, axis=None) for v in out)


def train_epoch(
    steps: Steps, pipeline: Pipeline, epoch: int, progress: EpochProgress
) -> tuple[dict[str, float], int]:
    """One pass over the training batches: (mean of each loss term, images seen)."""
    began = time.perf_counter()
    sums: dict[str, float] = {}
    seen = 0
    for batch in steps.distribute(pipeline.epoch(epoch)):
        terms = {k: float(v) for k, v in steps.train(batch).items()}
        n = int(round(terms.pop("images")))
        seen += n
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * n
        progress.advance(sums["loss"] / seen, seen / (time.perf_counter() - began))
    return {k: v / max(seen, 1) for k, v in sums.items()}, seen


def evaluate(steps: Steps, pipeline: Pipeline) -> tuple[float, metrics.Counts]:
    """(mean segmentation loss, IoU counts) over the validation set."""
    total_loss, seen, counts = 0.0, 0, metrics.Counts()
    for batch in steps.distribute(pipeline.epoch(0, shuffle=False)):
        loss, c, n = steps.eval(batch)
        total_loss += float(loss)
        seen += int(round(float(n)))
        counts = counts + metrics.Counts(*map(float, c.numpy()))
    return total_loss / max(seen, 1), counts
