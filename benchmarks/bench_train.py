"""Training throughput (images/s) of both architectures at 128 and 256.

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --archs sinet-lite --sizes 128 --batches 8

Each cell builds the net, runs the real augmented tf.data pipeline and train step (all
augmentations, boundary loss), discards the warm-up batches (graph tracing) and times the
next few. Short by design: a handful of batches per cell, so expect a few percent of noise,
more on a shared machine. Results go to benchmarks/out/train.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="sinet-lite,portraitnet", help="comma list")
    parser.add_argument("--sizes", default="128,256", help="comma list of input sizes")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per cell")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per cell")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from harness.train.config import TrainConfig
    from harness.train.trainer import throughput

    console = Console()
    rows = []
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            config = TrainConfig(arch=arch, input_size=size, batch_size=args.batch_size)
            row = throughput(config, batches=args.batches, warmup=args.warmup)
            console.print(
                f"{arch:>12} @ {size}: {row['images_per_s']:7.1f} images/s "
                f"({row['images']} images in {row['seconds']:.2f} s)",
                highlight=False,
            )
            rows.append(row)
    table = Table(title="Training throughput (augmented pipeline + train step)")
    for col in ("arch", "input", "batch", "params", "images/s"):
        table.add_column(col, justify="right" if col != "arch" else "left")
    for r in rows:
        table.add_row(
            r["arch"],
            str(r["input_size"]),
            str(r["batch_size"]),
            f"{r['params']:,}",
            f"{r['images_per_s']:.1f}",
        )
    console.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    path = save(
        "train",
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "cpus": os.cpu_count(),
            "load_avg_1m": load,
            "results": rows,
        },
    )
    console.print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
