"""Time the default conversion of a light model (issue 4: under 3 minutes on 2 cores).

    python benchmarks/bench_convert.py --model models/sinet-lite-128
    python benchmarks/bench_convert.py            # untrained sinet-lite 128 stand-in

The default conversion is 5 heads x fp32/fp16/int8-dynamic/int8 plus QAT for one head
(softmax), with the accuracy pass on the validation split. The model folder is copied to a
temporary directory first (without checkpoints/, logs/, variants/, reference/), so the
benchmark never touches the original and the reference cache starts cold. Without --model
an untrained sinet-lite at 128x128 stands in: the timing is the same work, the accuracy
figures are meaningless. Exit code 1 when the budget is exceeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

IGNORED = ("checkpoints", "logs", "variants", "reference", "variants.json")


def stand_in(folder: Path, size: int = 128) -> Path:
    """An untrained sinet-lite (the trainer's light arch) with a synthetic-data train.json."""
    from harness.train import nets
    from harness.train.data import normalization_for

    folder.mkdir(parents=True)
    built = nets.build("sinet-lite", size, 3)
    built.inference.save(folder / "model.keras")
    train_json = {
        "name": folder.name,
        "arch": "sinet-lite",
        "arch_params": {"width": 1.0},
        "input": {"height": size, "width": size, "channels": 3, "layout": "NHWC",
                  "dtype": "float32", "color": "RGB", "normalization": normalization_for(3)},
        "output": {"kind": "logits", "channels": 2, "foreground_channel": 1},
        "data": {"source": "synthetic", "seed": 0, "val_ratio": 0.1, "n_train": 900,
                 "n_val": 100},
    }  # fmt: skip
    (folder / "train.json").write_text(json.dumps(train_json, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: a stand-in)")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds (default 180)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from harness.convert.pipeline import ConvertOptions, convert_model

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        if args.model:
            folder = work / args.model.name
            shutil.copytree(args.model, folder, ignore=shutil.ignore_patterns(*IGNORED))
        else:
            folder = stand_in(work / "sinet-lite-128-untrained")
        stages: list[tuple[str, float]] = []
        start = time.perf_counter()

        def on_progress(message: str, done: int, total: int) -> None:
            stages.append((message, time.perf_counter() - start))
            console.log(f"[{done}/{total}] {message}")

        manifest = convert_model(folder, ConvertOptions(), progress=on_progress)
        total = time.perf_counter() - start
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    table = Table(title=f"default conversion of {manifest.model}")
    for col in ("variant", "size KiB", "IoU vs float", "max |dp|", "IoU vs GT", "GPU"):
        table.add_column(col)
    for r in manifest.variants:
        acc = r.accuracy or {}
        vf, gt = acc.get("vs_float", {}), acc.get("vs_ground_truth", {})

        def f(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        table.add_row(r.id, f"{r.size / 1024:.1f}", f(vf.get("mask_iou"), ".4f"),
                      f(vf.get("fg_prob_max_abs_error"), ".2e"), f(gt.get("mask_iou"), ".4f"),
                      r.gpu.delegation)  # fmt: skip
    console.print(table)
    steps = [(m, b - a) for (m, a), (_, b) in zip(stages, stages[1:], strict=False)]
    slowest = sorted(steps, key=lambda s: -s[1])[:5]
    console.print("slowest steps: " + ", ".join(f"{m} {s:.1f}s" for m, s in slowest))
    verdict = "[green]PASS[/]" if total <= args.budget else "[red]FAIL[/]"
    console.print(f"{len(manifest.variants)} variants in {total:.1f}s "
                  f"(budget {args.budget:.0f}s): {verdict}")  # fmt: skip
    return 0 if total <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
