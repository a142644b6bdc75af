"""Run every benchmark script in this folder (bench_*.py) and leave JSON in benchmarks/out/."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    only = sys.argv[1:]
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.stem.removeprefix("bench_") not in only:
            continue
        print(f"== {script.name}", flush=True)
        runpy.run_path(str(script), run_name="__main__")
