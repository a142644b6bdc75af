"""--enable_op_profiling on the virtual phone: official tables from real per-node LiteRT runs."""

from __future__ import annotations

import pytest

from harness.bench import profile_ops
from harness.runner import BenchmarkInvocation, Delegate, parse_log
from harness.virtual.benchmark_model.op_profile import NOTE

from .conftest import run_benchmark


def _profile(models, head, delegate, env):
    inv = BenchmarkInvocation(str(models[head]), delegate, threads=1, warmup_runs=1, runs=3,
                              enable_op_profiling=True)  # fmt: skip
    proc = run_benchmark(inv.flags(), env)
    assert proc.returncode == 0, proc.stderr
    return proc, parse_log(proc.stdout, proc.stderr)


def test_cpu_profile_lists_every_node_with_real_times(models, phone):
    proc, log = _profile(models, "softmax", "cpu", phone())
    assert NOTE in proc.stdout  # labelled: the virtual phone's own way of timing nodes
    types = [r.node_type for r in log.op_profile]
    assert types == ["CONV_2D", "CONV_2D", "SOFTMAX"]  # the model's nodes, in run order
    assert all(r.avg_ms > 0 and r.times_called == 1 for r in log.op_profile)
    assert sum(r.percent for r in log.op_profile) == pytest.approx(100.0, abs=0.01)
    assert log.op_profile[-1].cdf_percent == pytest.approx(100.0, abs=0.01)
    summary = {s.node_type: s for s in log.op_summary}
    assert summary["CONV_2D"].count == 2 and summary["SOFTMAX"].count == 1
    rows = profile_ops.rows(log, Delegate.CPU)
    assert not any(r["on_cpu"] for r in rows)  # a CPU cell has no fallback
    assert profile_ops.type_share(rows)["SOFTMAX"] > 0


def test_gpu_delegate_is_one_row_and_cpu_fallback_ops_keep_theirs(models, phone):
    _, full = _profile(models, "softmax", "gpu", phone())
    assert [r.node_type for r in full.op_profile] == ["TfLiteGpuDelegateV2"]
    _, partial = _profile(models, "argmax", "gpu", phone())
    types = [r.node_type for r in partial.op_profile]
    assert types == ["TfLiteGpuDelegateV2", "ARG_MAX"]  # the partition, then the CPU op
    rows = profile_ops.rows(partial, Delegate.GPU)
    cpu = [r for r in rows if r["on_cpu"]]
    assert [r["node_type"] for r in cpu] == ["ARG_MAX"] and cpu[0]["avg_ms"] > 0
    summary = profile_ops.summary(rows, virtual=True)
    assert summary["cpu_fallback_ops"] == 1 and 0 < summary["cpu_fallback_pct"] < 100
    assert summary["delegate_rows"] == 1
