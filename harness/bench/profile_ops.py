"""``harness bench --profile-ops``: where a cell's time goes, per op and per node type.

One extra ``benchmark_model`` invocation per cell with ``--enable_op_profiling=true`` (after
the latency invocations, so the profiler's own cost never enters the cell's latency), parsed by
:func:`harness.runner.parse_log` from the official ``Run Order`` and ``Summary by node type``
tables. Rows go to the store's ``op_profiles`` table (:meth:`Store.record_op_profile`); the
cell's latency dict gets a summary (``op_profile`` key).

With a GPU (or NNAPI) delegate, the delegate's kernel is **one row** (node type
``TfLiteGpuDelegateV2``): the tool cannot see inside it. The rows that are not delegate nodes
are the ops that fell back to the CPU, with their time and share.
"""

from __future__ import annotations

from harness.runner import BenchmarkLog, Delegate

DELEGATE_NODE_TYPES = ("TfLiteGpuDelegateV2", "TfLiteGpuDelegate", "TfLiteNnapiDelegate")


def is_delegate_node(node_type: str) -> bool:
    return node_type in DELEGATE_NODE_TYPES or node_type.lower().startswith("tflitegpudelegate")


def rows(log: BenchmarkLog, delegate: Delegate) -> list[dict]:
    """The ``Run Order`` rows as store rows; ``on_cpu``: an op a GPU/NNAPI cell left on the CPU
    (for a CPU delegate every op is on the CPU and none is a fallback: ``on_cpu`` is False)."""
    accelerated = delegate.is_gpu or delegate.value == "nnapi"
    return [
        {
            "seq": i,
            "node_type": r.node_type,
            "name": r.name,
            "first_ms": r.first_ms,
            "avg_ms": r.avg_ms,
            "pct": r.percent,
            "mem_kb": r.mem_kb,
            "times_called": r.times_called,
            "on_cpu": bool(accelerated and not is_delegate_node(r.node_type)),
            "delegate_node": is_delegate_node(r.node_type),
        }
        for i, r in enumerate(log.op_profile)
    ]


def summary(ops: list[dict], virtual: bool) -> dict:
    """The cell's ``latency["op_profile"]``: totals, the CPU-fallback share, the top node types."""
    total = sum(r["avg_ms"] for r in ops)
    cpu = [r for r in ops if r["on_cpu"]]
    by_type: dict[str, float] = {}
    for r in ops:
        by_type[r["node_type"]] = by_type.get(r["node_type"], 0.0) + r["avg_ms"]
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:5]
    return {
        "nodes": len(ops),
        "total_ms": total,
        "cpu_fallback_ops": len(cpu),
        "cpu_fallback_ms": sum(r["avg_ms"] for r in cpu),
        "cpu_fallback_pct": sum(r["avg_ms"] for r in cpu) / total * 100 if total > 0 else None,
        "delegate_rows": sum(r["delegate_node"] for r in ops),
        "top_types": [[t, ms, ms / total * 100 if total > 0 else None] for t, ms in top],
        "virtual": virtual,
    }


def type_share(ops: list[dict]) -> dict[str, float]:
    """% of the profiled time per node type (e.g. ``{"SOFTMAX": 12.0, ...}``)."""
    total = sum(r["avg_ms"] for r in ops)
    out: dict[str, float] = {}
    for r in ops:
        out[r["node_type"]] = out.get(r["node_type"], 0.0) + r["avg_ms"]
    return {k: v / total * 100 if total > 0 else 0.0 for k, v in out.items()}


def diff(a: list[dict], b: list[dict]) -> list[dict]:
    """Per node type: ms and % in ``a`` and ``b`` (two cells, e.g. softmax vs sigmoid head),
    sorted by the largest absolute ms difference."""

    def ms(rows: list[dict]) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in rows:
            out[r["node_type"]] = out.get(r["node_type"], 0.0) + r["avg_ms"]
        return out

    ma, mb = ms(a), ms(b)
    sa, sb = type_share(a), type_share(b)
    types = sorted(set(ma) | set(mb), key=lambda t: -abs(ma.get(t, 0.0) - mb.get(t, 0.0)))
    return [
        {
            "node_type": t,
            "a_ms": ma.get(t),
            "b_ms": mb.get(t),
            "a_pct": sa.get(t),
            "b_pct": sb.get(t),
            "delta_ms": ma.get(t, 0.0) - mb.get(t, 0.0),
        }
        for t in types
    ]


def profile_pass(device, staged, target, delegate: Delegate, s) -> tuple[list[dict], dict, str]:  # noqa: ANN001
    """One profiled invocation -> (rows, summary, log). CellFailed when the tool fails or prints
    no profile (a build without op profiling must not pass silently)."""
    from dataclasses import replace

    from harness.bench.measure import CellFailed, _failure, _invoker
    from harness.runner import BenchmarkInvocation

    inv = BenchmarkInvocation(
        graph=staged.models[target.sha256],
        delegate=delegate,
        threads=s.threads,
        warmup_runs=s.warmup,
        runs=min(s.runs, 20),
        exact_counts=True,
        enable_op_profiling=True,
    )
    returncode, text, log, _seconds = _invoker(device, staged, inv, replace(s, runner="shell"))()
    failure = _failure(returncode, log)
    if failure:
        raise CellFailed(f"op profiling pass: {failure}", text)
    ops = rows(log, delegate)
    if not ops:
        raise CellFailed("op profiling pass: benchmark_model printed no op profile", text)
    return ops, summary(ops, bool(log.virtual)), text
