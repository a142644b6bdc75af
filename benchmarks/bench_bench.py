"""harness bench overhead, caching and parallel scaling on virtual phones (one run each).

- overhead = wall time of `harness bench` / sum of the wall time of the benchmark_model
  commands on the device (goal <= 1.10). The bench process must not import TensorFlow.
- a second identical run pushes 0 bytes.
- two virtual phones at --threads 1 vs one phone: wall time ratio (goal <= 1.3).
- what the virtual phone's benchmark_model fork server saves: time inside benchmark_model for
  the same plan on a phone started with HARNESS_VIRTUAL_FORK=0 (a fresh Python per invocation).

Runs use the CLI's defaults (8 eval images, 20 runs, 2 warmup runs, 2 repeats per cell).

Virtual phones run on this machine, so their benchmark_model competes with the harness for
the same 2 cores: the figures are measured, not projected to a real phone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, lab, report  # noqa: E402


def _bench(model: Path, serials: list[str], store: Path, *extra: str) -> tuple[dict, float]:
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "bench",
        "--model",
        str(model),
        "--store",
        str(store),
        "--json",
        *extra,
    ]
    for serial in serials:
        cmd += ["--device", serial]
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(f"bench failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout), wall


def main() -> dict:
    from harness.convert import testing
    from harness.convert.pipeline import ConvertOptions, convert_model
    from harness.convert.variants import Head, Precision
    from harness.virtual import manager

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny"
        testing.make_model_folder(model, size=128, n_train=128, n_val=16, epochs=3, width=16)
        convert_model(
            model,
            ConvertOptions(
                heads=(Head.SOFTMAX, Head.SIGMOID, Head.LOGITS),
                precisions=(Precision.FP32, Precision.FP16),
                accuracy=False,
            ),
        )
        noimport = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, harness.cli, harness.bench.run; print('tensorflow' in sys.modules)",
            ],
            capture_output=True,
            text=True,
        )
        with lab(("SM-G973F", "SM-G973U")) as (server, records):
            f, u = records[0].serial, records[1].serial
            store = Path(tmp) / "r.db"
            first, first_wall = _bench(model, [f], store)
            second, second_wall = _bench(model, [f], store)
            one, one_wall = _bench(model, [f], store, "--threads", "1")
            two, two_wall = _bench(model, [f, u], store, "--threads", "1")
            os.environ["HARNESS_VIRTUAL_FORK"] = "0"
            try:
                plain_phone = manager.start("SM-G973F", port=free_port(), servers=[server])
            finally:
                del os.environ["HARNESS_VIRTUAL_FORK"]
            try:
                plain, plain_wall = _bench(model, [plain_phone.serial], store)
            finally:
                manager.stop(plain_phone.serial)
    cells = len(first["cells"])
    result = {
        "cells_per_run": cells,
        "bench_imports_tensorflow": noimport.stdout.strip() == "True",
        "overhead_process_wall_over_device": first_wall / first["device_seconds"],
        "overhead_in_process_wall_over_device": first["wall_seconds"] / first["device_seconds"],
        "overhead_warm_run_process": second_wall / second["device_seconds"],
        "first_run_bytes_pushed": first["bytes_pushed"],
        "second_run_bytes_pushed": second["bytes_pushed"],
        "two_phones_over_one_wall_threads1": two_wall / one_wall,
        "one_phone_wall_s": one_wall,
        "two_phones_wall_s": two_wall,
        "device_time_plain_over_fork_server": plain["device_seconds"] / first["device_seconds"],
        "overhead_process_without_fork_server": plain_wall / plain["device_seconds"],
        "device": "virtual SM-G973F / SM-G973U on this machine (2 cores)",
    }
    return report("bench", "harness bench (virtual phones, one run each)", result)


if __name__ == "__main__":
    main()
