"""Training throughput (images/s) and input waiting per (arch, size, strategy, precision).

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --archs sinet-lite --sizes 128 --batches 8
    python benchmarks/bench_train.py --strategies auto,one-device --precisions float32,mixed
    python benchmarks/bench_train.py --strategies mirrored --cpu-replicas 2   # 2 logical CPUs

Each cell builds the net under the strategy, runs the real augmented tf.data pipeline and
train step (all augmentations, boundary loss), discards the warm-up batches (graph tracing)
and times the next few. ``input wait`` is the share of step time spent waiting for the next
batch (what prefetching did not hide). A mixed-precision cell on a run without a GPU is
recorded as skipped (harness refuses it). Short by design: a handful of batches per cell, so
expect a few percent of noise, more on a shared machine. Results go to
benchmarks/out/train.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

PRECISIONS = {"float32": False, "mixed": True}


def _split_cpu(replicas: int) -> None:
    """Present the CPU as ``replicas`` logical devices (before TensorFlow's runtime starts)."""
    from harness import tfcompat

    tf = tfcompat.tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    config = [tf.config.LogicalDeviceConfiguration()] * replicas
    tf.config.set_logical_device_configuration(cpu, config)


def _cells(args) -> list[dict]:
    from rich.console import Console

    from harness.errors import UsageError
    from harness.train.config import TrainConfig
    from harness.train.throughput import throughput

    console = Console()
    rows = []
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for strategy in args.strategies.split(","):
                for precision in args.precisions.split(","):
                    config = TrainConfig(
                        arch=arch,
                        input_size=size,
                        batch_size=args.batch_size,
                        strategy=strategy,
                        mixed_precision=PRECISIONS[precision],
                    )
                    cell = f"{arch} @ {size}, {strategy}, {precision}"
                    try:
                        row = throughput(config, batches=args.batches, warmup=args.warmup)
                    except UsageError as exc:
                        console.print(f"{cell}: skipped ({exc})", highlight=False)
                        rows.append({**config.to_json(), "skipped": str(exc)})
                        continue
                    console.print(
                        f"{cell}: {row['images_per_s']:7.1f} images/s, input wait "
                        f"{row['input_wait']:.1%} ({row['images']} images in "
                        f"{row['seconds']:.2f} s on {row['replicas']} replica(s))",
                        highlight=False,
                    )
                    rows.append(row)
    return rows


def _table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="Training throughput (augmented pipeline + train step)")
    cols = ("arch", "input", "batch", "strategy", "replicas", "precision", "images/s", "input wait")
    for col in cols:
        table.add_column(col, justify="left" if col in ("arch", "strategy") else "right")
    for r in rows:
        if "skipped" in r:
            continue
        table.add_row(
            r["arch"],
            str(r["input_size"]),
            str(r["batch_size"]),
            r["strategy"],
            str(r["replicas"]),
            r["precision"],
            f"{r['images_per_s']:.1f}",
            f"{r['input_wait']:.1%}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="sinet-lite,portraitnet", help="comma list")
    parser.add_argument("--sizes", default="128,256", help="comma list of input sizes")
    parser.add_argument("--strategies", default="auto", help="comma list (harness train)")
    parser.add_argument("--precisions", default="float32", help="comma list: float32, mixed")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--batches", type=int, default=4, help="timed batches per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per cell")
    parser.add_argument(
        "--cpu-replicas", type=int, default=0, help="split the CPU into N logical devices"
    )
    args = parser.parse_args(argv)
    unknown = set(args.precisions.split(",")) - set(PRECISIONS)
    if unknown:
        parser.error(f"unknown precision(s): {', '.join(sorted(unknown))}")
    if args.cpu_replicas > 1:
        _split_cpu(args.cpu_replicas)

    from rich.console import Console

    from harness import tfcompat

    rows = _cells(args)
    console = Console()
    console.print(_table(rows))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    gpus = [d.name for d in tfcompat.tf().config.list_logical_devices("GPU")]
    path = save(
        "train",
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "cpus": os.cpu_count(),
            "gpus": gpus,
            "load_avg_1m": load,
            "results": rows,
        },
    )
    console.print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
