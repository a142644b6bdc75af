"""Where training runs: a tf.distribute strategy over the visible devices, and its precision.

``--strategy`` picks the devices (:class:`Strategy`); :func:`resolve` turns that choice and the
visible devices into a :class:`Devices` value (pure, tested without TensorFlow), and
:func:`make_strategy` builds the ``tf.distribute`` object for it.

``--batch-size`` is always the *global* batch: MirroredStrategy splits each batch across the
replicas, so a run trains on the same batches (and the same learning-rate schedule) whatever
the strategy. ``--mixed-precision`` computes in float16 on GPUs (Keras ``mixed_float16``: the
variables stay float32) and is refused on a CPU-only run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness import tfcompat
from harness.errors import UsageError


class Strategy(StrEnum):
    AUTO = "auto"
    MIRRORED = "mirrored"
    ONE_DEVICE = "one-device"
    CPU = "cpu"

    @property
    def summary(self) -> str:
        return {
            Strategy.AUTO: "mirrored over the GPUs when there are several, else one-device",
            Strategy.MIRRORED: "MirroredStrategy over every visible GPU (all logical CPUs if none)",
            Strategy.ONE_DEVICE: "the first GPU, or the CPU when there is none",
            Strategy.CPU: "the CPU only, even when GPUs are visible",
        }[self]

    @classmethod
    def parse(cls, name: str) -> Strategy:
        try:
            return cls(name)
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise UsageError(f"unknown --strategy {name!r}; choose one of: {choices}") from None


@dataclass(frozen=True)
class Devices:
    """A resolved strategy: which devices hold a replica, and the compute precision."""

    strategy: Strategy  # never AUTO
    devices: tuple[str, ...]  # logical device names, e.g. ("/device:GPU:0", "/device:GPU:1")
    mixed_precision: bool = False

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def on_gpu(self) -> bool:
        return all("GPU" in d.upper() for d in self.devices)

    def describe(self) -> dict[str, Any]:
        """What train.json records under ``training.devices``."""
        return {
            "strategy": self.strategy.value,
            "replicas": self.replicas,
            "devices": list(self.devices),
            "precision": "mixed_float16" if self.mixed_precision else "float32",
        }


def resolve(
    strategy: Strategy | str, mixed_precision: bool, gpus: Sequence[str], cpus: Sequence[str]
) -> Devices:
    """The devices ``strategy`` trains on, given the visible logical GPUs and CPUs."""
    strategy = Strategy.parse(strategy) if isinstance(strategy, str) else strategy
    if not cpus:
        raise UsageError("TensorFlow sees no CPU device")
    if strategy is Strategy.AUTO:
        strategy = Strategy.MIRRORED if len(gpus) >= 2 else Strategy.ONE_DEVICE
    if strategy is Strategy.CPU:
        chosen: tuple[str, ...] = (cpus[0],)
    elif strategy is Strategy.ONE_DEVICE:
        chosen = (gpus[0] if gpus else cpus[0],)
    else:
        chosen = tuple(gpus) if gpus else tuple(cpus)
    devices = Devices(strategy, chosen, mixed_precision)
    if mixed_precision and not devices.on_gpu:
        raise UsageError(
            "--mixed-precision needs a GPU (float16 on a CPU is slower, not faster); "
            f"--strategy {strategy.value} runs on {', '.join(chosen)}"
        )
    return devices


def visible() -> tuple[list[str], list[str]]:
    """The logical GPU and CPU device names TensorFlow sees (this initialises its runtime)."""
    tf = tfcompat.tf()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return gpus, cpus


def detect(strategy: Strategy | str, mixed_precision: bool) -> Devices:
    """:func:`resolve` over the devices visible now."""
    gpus, cpus = visible()
    return resolve(strategy, mixed_precision, gpus, cpus)


def make_strategy(devices: Devices):
    """The ``tf.distribute.Strategy`` for ``devices``."""
    tf = tfcompat.tf()
    if devices.strategy is Strategy.MIRRORED:
        # NCCL all-reduce is for GPUs; CPU replicas reduce through one device.
        ops = None if devices.on_gpu else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(list(devices.devices), cross_device_ops=ops)
    if devices.replicas == 1 and devices.devices[0] == _default_device(tf):
        # One replica on the device TensorFlow places ops on anyway: the default strategy runs
        # the same step without OneDeviceStrategy's per-step distribution overhead (measured
        # ~2.5x faster training on 2 CPU cores).
        return tf.distribute.get_strategy()
    return tf.distribute.OneDeviceStrategy(devices.devices[0])


def _default_device(tf) -> str:  # type: ignore[no-untyped-def]
    """The logical device TensorFlow places ops on by default: the first GPU if any, else the
    first CPU."""
    for kind in ("GPU", "CPU"):
        names = [d.name for d in tf.config.list_logical_devices(kind)]
        if names:
            return names[0]
    return ""


@contextlib.contextmanager
def precision(mixed: bool) -> Iterator[None]:
    """Build layers under the ``mixed_float16`` policy when ``mixed``; float32 again after."""
    keras = tfcompat.keras()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")
