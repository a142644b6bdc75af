"""Training throughput: images/s of the real pipeline and train step, and input waiting.

Nothing is written to disk. Each timed step is split into the time spent waiting for the
next batch (``next()`` on the distributed iterator: decoding, augmentation and batching that
prefetch did not hide) and the rest (the step itself, synchronised by reading its loss), so
``input_wait`` is the share of step time a faster accelerator could not win back.
"""

from __future__ import annotations

import time
from typing import Any

from harness import tfcompat
from harness.train import data as data_mod
from harness.train import distribute, losses, nets
from harness.train.config import TrainConfig
from harness.train.pipeline import Pipeline
from harness.train.steps import Steps, make_optimizer


def throughput(
    config: TrainConfig,
    *,
    batches: int = 4,
    warmup: int = 2,
    devices: distribute.Devices | None = None,
) -> dict[str, Any]:
    """Training images/s of ``config``'s arch, size, strategy and precision on synthetic data,
    timed over ``batches`` batches after ``warmup`` (tracing happens in the warm-up)."""
    config = config.validated()
    devices = devices or distribute.detect(config.strategy, config.mixed_precision)
    tf = tfcompat.tf()
    keras = tfcompat.keras()
    keras.utils.set_random_seed(config.seed)
    n = config.batch_size * (batches + warmup)
    dataset = data_mod.synthetic_dataset(n, config.input_size, config.seed, config.channels)
    normalization = data_mod.normalization_for(config.channels)
    thick = losses.thicknesses_for(config.input_size) if config.boundary_weight else ()
    pipe = Pipeline(
        dataset,
        config.batch_size,
        normalization,
        config.seed,
        config.augment,
        thick,
        replicas=devices.replicas,
    )
    strategy = distribute.make_strategy(devices)
    with distribute.precision(devices.mixed_precision), strategy.scope():
        built = nets.build(config.arch, config.input_size, config.channels, config.width)
        optimizer = make_optimizer(config.lr, devices.mixed_precision)
    spec = strategy.experimental_distribute_dataset(pipe.epoch(1)).element_spec
    steps = Steps(config, built, optimizer, strategy, spec, spec, mixed=devices.mixed_precision)
    iterator = iter(steps.distribute(pipe.epoch(1)))
    timed = 0
    waited = total = 0.0
    for i in range(batches + warmup):
        began = time.perf_counter()
        batch = next(iterator)
        got = time.perf_counter()
        out = tf.nest.map_structure(lambda t: t.numpy(), steps.train(batch))
        if i >= warmup:
            waited += got - began
            total += time.perf_counter() - began
            timed += int(round(float(out["images"])))
    return {
        "arch": config.arch,
        "input_size": config.input_size,
        "batch_size": config.batch_size,
        "strategy": devices.strategy.value,
        "replicas": devices.replicas,
        "precision": "mixed_float16" if devices.mixed_precision else "float32",
        "params": nets.count_params(built.inference),
        "images": timed,
        "seconds": round(total, 3),
        "images_per_s": round(timed / total, 2) if total else 0.0,
        "input_wait": round(waited / total, 4) if total else 0.0,
    }
