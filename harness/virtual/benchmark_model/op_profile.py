"""``--enable_op_profiling`` on the virtual phone: per-node times measured on the host LiteRT.

The LiteRT Python API has no per-op timer, so each node of subgraph 0 is **timed alone**: it is
cut out as a one-node model (its weights, options and tensors unchanged; its non-constant
inputs become the model's inputs, fed with the values that node saw in a full run of the same
inputs), and that model is invoked ``runs`` times on LiteRT with the run's thread count and
op resolver. ``[first]`` is its first timed invoke, ``[avg ms]`` the mean of the rest. The sum
of the nodes is therefore close to, not equal to, one full invoke (each alone pays an invoke's
fixed cost and loses cross-node cache reuse). Node types are TFLite builtin op names
(``SOFTMAX``), as the official tool prints them with XNNPACK off.

With an (emulated) GPU or NNAPI delegate, the nodes it takes become one row per delegate
partition (node type ``TfLiteGpuDelegateV2``, timed as the sum of its nodes on the host), like
the official tool, where a delegate kernel is one opaque node; the nodes left on the CPU keep
their own rows. The tables follow the official tool's format (FACTS.md §1); a WARN line says
they come from the virtual phone. Imports only numpy, flatbuffers and ai-edge-litert.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from harness.virtual.benchmark_model.tail_model import _is_const
from harness.virtual.benchmark_model.tflite_graph import Graph

NOTE = (
    "Op profile of the harness virtual phone: each node timed alone on the host LiteRT "
    "(a one-node model fed the values of a full run); delegated nodes are one row per delegate "
    "partition. See docs/virtual-phone.md."
)


@dataclass(frozen=True)
class Row:
    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    times_called: int = 1


class _Cutter:
    """One-node models cut from subgraph 0 (flatbuffer object API bundled with ai-edge-litert);
    only the buffers the node reads are packed."""

    def __init__(self, model: bytes) -> None:
        self.m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
        self.sub = self.m.subgraphs[0]
        self.ops = list(self.sub.operators or [])
        self.tensors = list(self.sub.tensors or [])
        self.const = {i for i, t in enumerate(self.tensors) if _is_const(self.m, t)}
        self.buffers = list(self.m.buffers or [])
        self.size = len(model)

    def cut(self, index: int) -> tuple[bytes, list[int]]:
        op = self.ops[index]
        reads = [int(t) for t in (op.inputs if op.inputs is not None else []) if int(t) >= 0]
        inputs = list(dict.fromkeys(t for t in reads if t not in self.const))
        outputs = [int(t) for t in (op.outputs if op.outputs is not None else []) if int(t) >= 0]
        keep = {int(self.tensors[t].buffer or 0) for t in reads}
        m, sub = self.m, self.sub
        saved = (sub.operators, sub.inputs, sub.outputs, m.buffers, m.signatureDefs)
        sub.operators, sub.inputs, sub.outputs = [op], inputs, outputs
        m.buffers = [b if i in keep or i == 0 else fb.BufferT() for i, b in enumerate(self.buffers)]
        m.signatureDefs = []
        try:
            builder = flatbuffers.Builder(4096)
            builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
            return bytes(builder.Output()), inputs
        finally:
            sub.operators, sub.inputs, sub.outputs, m.buffers, m.signatureDefs = saved


def _time_node(data: bytes, values: dict[int, np.ndarray], inputs: list[int], kwargs: dict,
               runs: int) -> tuple[float, float]:  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(model_content=data, **kwargs)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_input_details()}
    for t in inputs:
        interp.set_tensor(t, np.ascontiguousarray(values[t], dtype=details[t]["dtype"]))
    times = []
    for _ in range(max(2, runs + 1)):
        start = time.perf_counter_ns()
        interp.invoke()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times[0], float(np.mean(times[1:]))


def measure(
    model: bytes,
    graph: Graph,
    path: str,
    feeds: list[tuple[int, np.ndarray]],
    kwargs: dict,
    runs: int,
    delegated: frozenset[int] = frozenset(),
    delegate_name: str = "",
) -> tuple[list[Row], list[str]]:
    """Per-node rows in execution order (delegated nodes merged per partition) and warnings
    for nodes that could not be timed alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = Interpreter(model_path=path, experimental_preserve_all_tensors=True, **kwargs)
    full.allocate_tensors()
    for index, value in feeds:
        full.set_tensor(index, value)
    full.invoke()
    cutter = _Cutter(model)
    timed: list[tuple[int, float, float] | None] = []
    problems: list[str] = []
    for op in graph.ops:
        try:
            data, inputs = cutter.cut(op.index)
            values = {t: full.get_tensor(t) for t in inputs}
            first, avg = _time_node(data, values, inputs, kwargs, runs)
            timed.append((op.index, first, avg))
        except (RuntimeError, ValueError, KeyError) as exc:
            timed.append(None)
            problems.append(f"node {op.index} ({op.op}) could not be timed alone: {exc}")
    rows: list[Row] = []
    partition: list[tuple[int, float, float]] = []

    def close_partition() -> None:
        if partition:
            first = sum(p[1] for p in partition)
            avg = sum(p[2] for p in partition)
            rows.append(Row(delegate_name, f"{delegate_name}:{partition[0][0]}", first, avg))
            partition.clear()

    for op, entry in zip(graph.ops, timed, strict=True):
        if entry is None:
            continue
        if op.index in delegated:
            partition.append(entry)
            continue
        close_partition()
        name = graph.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else ""
        rows.append(Row(op.op, f"[{name}]:{op.index}", entry[1], entry[2]))
    close_partition()
    return rows, problems


def _line(cells: list[str]) -> str:
    return "\t" + "\t".join(cells)


_HEAD = ["[node type]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]", "[times called]",
         "[Name]"]  # fmt: skip


def _table(title: str, rows: list[Row], total: float) -> list[str]:
    out = [f"{'=' * 30} {title} {'=' * 30}", _line([f"{h:>24}" for h in _HEAD[:-1]] + [_HEAD[-1]])]
    cdf = 0.0
    for r in rows:
        pct = r.avg_ms / total * 100 if total > 0 else 0.0
        cdf += pct
        out.append(
            _line(
                [
                    f"{r.node_type:>24}",
                    f"{r.first_ms:>24.3f}",
                    f"{r.avg_ms:>24.3f}",
                    f"{pct:>23.3f}%",
                    f"{cdf:>23.3f}%",
                    f"{0.0:>24.3f}",
                    f"{r.times_called:>24}",
                    r.name,
                ]
            )
        )
    return [*out, ""]


def tables(rows: list[Row], timings: str) -> str:
    """The ``Operator-wise Profiling Info for Regular Benchmark Runs`` block, official format."""
    total = sum(r.avg_ms for r in rows)
    lines = ["Operator-wise Profiling Info for Regular Benchmark Runs:"]
    lines += _table("Run Order", rows, total)
    top = sorted(rows, key=lambda r: -r.avg_ms)
    lines += _table("Top by Computation Time", top, total)
    lines.append(f"Number of nodes executed: {len(rows)}")
    by_type: dict[str, list[Row]] = {}
    for r in rows:
        by_type.setdefault(r.node_type, []).append(r)
    summary = sorted(by_type.items(), key=lambda kv: -sum(r.avg_ms for r in kv[1]))
    lines.append(f"{'=' * 30} Summary by node type {'=' * 30}")
    head = ["[Node type]", "[count]", "[avg ms]", "[avg %]", "[cdf %]", "[mem KB]",
            "[times called]"]  # fmt: skip
    lines.append(_line([f"{h:>24}" for h in head]))
    cdf = 0.0
    for node_type, group in summary:
        avg = sum(r.avg_ms for r in group)
        pct = avg / total * 100 if total > 0 else 0.0
        cdf += pct
        lines.append(
            _line(
                [
                    f"{node_type:>24}",
                    f"{len(group):>24}",
                    f"{avg:>24.3f}",
                    f"{pct:>23.3f}%",
                    f"{cdf:>23.3f}%",
                    f"{0.0:>24.3f}",
                    f"{sum(r.times_called for r in group):>24}",
                ]
            )
        )
    lines += ["", f"Timings (microseconds): {timings}", "Memory (bytes): count=0"]
    lines.append(f"{len(rows)} nodes observed")
    return "\n".join(lines) + "\n"


def print_profile(bench, feeds: list[tuple[int, np.ndarray]], timings: str) -> None:  # noqa: ANN001
    """What ``--enable_op_profiling`` prints after the runs (``bench``: the tool's Benchmark)."""
    from ai_edge_litert.interpreter import OpResolverType

    p = bench.p
    resolver = OpResolverType.AUTO
    if "use_xnnpack" in p.explicit and not p["use_xnnpack"]:
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    threads = p["num_threads"]
    kwargs = {
        "num_threads": threads if threads > 0 else None,
        "experimental_op_resolver_type": resolver,
    }
    emulation = bench.emulation
    delegated = emulation.delegated if emulation is not None else frozenset()
    name = {"gpu": "TfLiteGpuDelegateV2", "nnapi": "TfLiteNnapiDelegate"}.get(bench.accel, "")
    runs = max(1, min(int(p["num_runs"]), 20))
    rows, problems = measure(
        bench.model_data, bench.graph, p["graph"], feeds, kwargs, runs, delegated, name
    )
    bench.out.warn(NOTE)
    for problem in problems:
        bench.out.warn(problem)
    print("INFO: " + tables(rows, timings), flush=True)
