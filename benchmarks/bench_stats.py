"""What statistics cost and what they buy (issue 18), on one virtual phone, one plan.

- device time: seconds inside benchmark_model for the latency passes of the plan with the
  fixed defaults (2 invocations per cell) vs ``--target-ci 2`` (invocations added until the
  95% t interval of the mean is within ±2%, capped by ``--max-time``), and how many
  invocations each cell then needed.
- false alarms: N identical runs of the same plan (fixed defaults); each later run is compared
  with the first, cell by cell. A 0% change flagged as a regression is a false alarm. The old
  rule flags a change > 5% of the mean (whatever the noise); the new rule
  (harness.bench.stats.decide) flags it only when the 95% intervals separate.

The plan: a tiny converted model (softmax and sigmoid heads, fp32), delegates cpu and gpu
(emulated), 2 eval images. Figures are measured on this machine, where the virtual phone shares
the CPU with everything else: they are not a real phone's numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import lab, report  # noqa: E402
from bench_bench import _bench  # noqa: E402

REPEATED = int(os.environ.get("HARNESS_BENCH_STATS_RUNS", "20"))
OLD_THRESHOLD = 5.0  # %: the old rule


def main() -> dict:
    from harness.bench import stats
    from harness.convert import testing
    from harness.convert.pipeline import ConvertOptions, convert_model
    from harness.convert.variants import Head, Precision
    from harness.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny"
        testing.make_model_folder(model, size=64, n_train=64, n_val=8, epochs=2, width=8)
        convert_model(
            model,
            ConvertOptions(
                heads=(Head.SOFTMAX, Head.SIGMOID), precisions=(Precision.FP32,), accuracy=False
            ),
        )
        plan = ["--delegates", "cpu,gpu", "--images", "2"]
        store = Path(tmp) / "r.db"
        with lab(("SM-G973F",)) as (_, records):
            serial = records[0].serial
            fixed, _ = _bench(model, [serial], store, *plan)
            target, _ = _bench(model, [serial], store, *plan, "--target-ci", "2")
            runs = [fixed] + [_bench(model, [serial], store, *plan)[0] for _ in range(REPEATED - 1)]
        with Store(store) as db:
            cells = {r["run"]: {c.key: c.latency for c in db.cells(r["run"])} for r in runs}
    first = cells[runs[0]["run"]]
    old = new = inconclusive = compared = 0
    for later in runs[1:]:
        for key, lat in cells[later["run"]].items():
            base = first[key]
            compared += 1
            pct = (lat["avg_ms"] - base["avg_ms"]) / base["avg_ms"] * 100
            old += pct > OLD_THRESHOLD
            d = stats.decide_cells(base, lat, OLD_THRESHOLD)
            new += d.regressed
            inconclusive += d.inconclusive
    fixed_s = sum(c["latency"]["bm_s"] for c in fixed["cells"])
    target_s = sum(c["latency"]["bm_s"] for c in target["cells"])
    result = {
        "cells_in_plan": len(fixed["cells"]),
        "latency_device_s_fixed_defaults": fixed_s,
        "latency_device_s_target_ci_2": target_s,
        "target_ci_over_fixed": target_s / fixed_s,
        "invocations_per_cell_target_ci_2": ",".join(
            str(c["latency"]["invocations"]) for c in target["cells"]
        ),
        "target_met_cells": sum(bool(c["latency"]["ci_target_met"]) for c in target["cells"]),
        "ci95_pct_fixed_defaults_median": sorted(c["latency"]["ci95_pct"] for c in fixed["cells"])[
            len(fixed["cells"]) // 2
        ],
        "identical_runs": len(runs),
        "comparisons_0pct_change": compared,
        "flagged_old_rule_gt5pct": old,
        "flagged_new_rule_intervals": new,
        "inconclusive_new_rule": inconclusive,
        "device": "virtual SM-G973F on this machine (shared CPU)",
    }
    return report("stats", "statistics: --target-ci cost and false alarms (virtual phone)", result)


if __name__ == "__main__":
    main()
