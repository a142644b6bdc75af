"""``harness diagnose`` as a library call: matrix -> exposure -> localization -> recommendation.

1. **Matrix**: one ``harness bench`` run (its cells are stored like any bench run) over the
   heads x delegate configs; each cell gets a verdict (:mod:`.matrix`).
2. **Exposure** (desktop): how close each variant comes to each documented failure mode on the
   eval set, e.g. the largest softmax input vs ln(65504) (:mod:`.exposure`).
3. **Localization** (phone + desktop): for each cell whose values are wrong, probe models expose
   every intermediate tensor; the first one past the tolerance names the op (:mod:`.localize`).
4. **Recommendation**: the fastest correct configuration and the price of each remedy
   (:mod:`.recommend`).

The diagnosis (a JSON-ready dict, docs/diagnose.md) is stored with the run
(``Store.add_diagnosis``) for ``harness report``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.bench import checks
from harness.bench.measure import Settings
from harness.bench.plan import Target, eval_images, resolve_delegates, resolve_targets
from harness.bench.run import BenchOptions, run_bench
from harness.cell import Cell
from harness.convert.iospec import IoOptions
from harness.convert.reference import EvalSet, preprocess
from harness.diagnose.exposure import Finding, explain, exposure
from harness.diagnose.localize import DEFAULT_TOLERANCE, localize
from harness.diagnose.matrix import MatrixCell, classify
from harness.diagnose.plan import plan_model
from harness.diagnose.recommend import recommend
from harness.errors import UsageError
from harness.runner import Delegate, delegate_label
from harness.store import Store
from harness.tflite.gpu_delegates import GENERATIONS

__all__ = ["DEFAULT_DELEGATES", "SCHEMA", "DiagnoseOptions", "run_diagnose"]

SCHEMA = 1
DEFAULT_DELEGATES = "cpu,gpu,gpu-fp32,gpu-cl,gpu-gl"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DiagnoseOptions:
    model: str
    devices: tuple[str, ...] = ()
    adb: tuple[str, ...] = ()
    heads: str | None = None
    precision: str = "fp32"
    delegates: str = DEFAULT_DELEGATES
    eval_set: str = "synthetic"
    images: int = 8
    store: str = "results/harness.db"
    runs: int = 10
    warmup: int = 2
    repeats: int = 2
    threads: int | None = None
    probe_images: int = 2
    tolerance: float = DEFAULT_TOLERANCE
    timeout: float = 120.0
    wait_lock: float = 0.0
    io: dict = field(default_factory=dict)  # IoOptions.to_dict() (harness.convert.iospec)


def _clean(value):
    """JSON-safe: non-finite floats become None (the store refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _head(target: Target) -> str:
    head = target.spec.get("head")
    if head:
        return str(head)
    activation = str(target.output.activation)
    return {"none": "logits", "softmax": "softmax", "sigmoid": "sigmoid", "argmax": "argmax"}.get(
        activation, activation
    )


def _evidence(store: Store, cell: Cell, target: Target | None) -> tuple[int | None, list]:
    """From the cell's pulled outputs: NaN/Inf over every channel (None when not stored) and the
    eval images ordered worst first (most NaN/Inf, then largest error vs the desktop), which
    are the ones worth probing."""
    if target is None or not cell.measured:
        return None, []
    blob = store.outputs(cell.run_id, cell.key)
    if not blob:
        return None, []
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        raw = np.array(data["device_raw"])
        device_fg, ref_fg = np.array(data["device_fg"]), np.array(data["ref_fg"])
    bad = np.zeros(len(raw), np.int64)
    if np.dtype(target.output.dtype).kind == "f":
        size = int(np.prod(target.output.shape[1:])) * np.dtype(target.output.dtype).itemsize
        chunk = np.ascontiguousarray(raw[:, target.output_offset : target.output_offset + size])
        values = chunk.view(target.output.dtype).reshape(len(raw), -1)
        bad = np.count_nonzero(~np.isfinite(values), axis=1)
    with np.errstate(invalid="ignore"):
        diff = np.nan_to_num(np.abs(device_fg.astype(np.float64) - ref_fg), nan=1.0, posinf=1.0)
    err = diff.reshape(len(diff), -1).max(axis=1) if diff.size else np.zeros(len(raw))
    order = sorted(range(len(raw)), key=lambda i: (-int(bad[i]), -float(err[i]), i))
    nonfinite = int(bad.sum()) if np.dtype(target.output.dtype).kind == "f" else None
    return nonfinite, order


def _exposure_summary(findings: dict[str, list[Finding]]) -> list[str]:
    lines = []
    for variant, items in findings.items():
        for f in items:
            lines.append(f"{variant}: {f.op}#{f.op_index}: {f.why}")
    return lines


def _largest_logit(findings: dict[str, list[Finding]], targets: list[Target]) -> dict | None:
    best = None
    for t in targets:
        for f in findings.get(t.variant_id, []):
            if f.mode != "softmax-fp16-overflow" or f.largest is None:
                continue
            if best is None or f.largest > best["value"]:
                best = {
                    "value": f.largest,
                    "variant": t.variant_id,
                    "op": f"{f.op}#{f.op_index}",
                    "limit": f.limit,
                    "over": f.over,
                    "of": f.total,
                    "exposed": f.exposed,
                }
    return best


def _device(serial: str, opts: DiagnoseOptions):
    from harness.devices import adb
    from harness.devices.device import Device

    entries = adb.list_devices(adb.resolve_servers(list(opts.adb) or None))
    return Device(adb.select_devices(entries, [serial])[0])


def _localize_device(
    device,
    cells: list[MatrixCell],
    opts: DiagnoseOptions,
    targets: dict[str, Target],
    eval_set: EvalSet,
    findings: dict[str, list[Finding]],
    progress: Progress,
) -> list[dict]:
    failing = [c for c in cells if c.values_wrong]
    if not failing:
        return []
    serial = device.serial
    lock = device.lock(wait=opts.wait_lock).acquire()
    out = []
    try:
        info = device.probe()
        settings = Settings(threads=opts.threads, timeout=opts.timeout)
        for cell in failing:
            target = targets[cell.variant]
            images = (cell.worst or [0])[: max(1, opts.probe_images)]
            progress(f"localizing {cell.variant} on {cell.delegate} ({serial})")
            loc = localize(
                device,
                info,
                target,
                Delegate(cell.delegate),  # measured by this run: a known name
                eval_set,
                sorted(images),
                tolerance=opts.tolerance,
                settings=settings,
            )
            entry_json = loc.to_dict()
            entry_json["verdict"] = cell.verdict
            mode, why = "", loc.error
            if loc.culprit is not None:
                c = loc.culprit
                mode, why = explain(
                    c.op,
                    c.op_index,
                    c.nonfinite,
                    findings.get(cell.variant, []),
                    cell.precision,
                    info.gpu_delegate or None,
                )
            elif not loc.error:
                largest = loc.largest
                why = "no tensor passes the tolerance" + (
                    f"; the largest error is at {largest.brief()}" if largest else ""
                )
            entry_json["mode"] = mode or None
            entry_json["explanation"] = why
            out.append(entry_json)
    finally:
        lock.release()
    return out


def _notes(cells: list[MatrixCell], virtual: bool) -> list[str]:
    notes = []
    if virtual:
        notes.append(
            "virtual phone: latencies are host-CPU LiteRT timings, not phone timings "
            "(docs/virtual-phone.md); rank on a real phone before shipping"
        )
    if any(c.cell.delegation.cl_to_gl_fallback for c in cells):
        notes.append(
            "OpenCL is missing on this phone: the GPU delegate fell back to OpenGL "
            "(gpu cells ran on GL)"
        )
    partial: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        if c.verdict == "delegate-failed":
            notes.append(f"{c.variant} on {c.delegate}: {c.reason}")
        elif c.verdict == "failed":
            notes.append(f"{c.variant} on {c.delegate} could not be measured: {c.reason}")
        elif c.verdict == "partial":
            ops = ", ".join(c.fallback_ops) or "some ops"
            partial.setdefault((c.variant, ops), []).append(c.delegate)
    for (variant, ops), delegates in partial.items():
        notes.append(f"{variant}: partial delegation on {', '.join(delegates)}; on the CPU: {ops}")
    return list(dict.fromkeys(notes))


def _remedies(generation: str | None, locs: list[dict]) -> list[str]:
    """What the sources say fixes the softmax failure found here (FACTS.md §2), for the phone's
    GPU delegate generation; nothing when no SOFTMAX overflow was localized."""
    if not any((loc.get("mode") or "").startswith("softmax-") for loc in locs):
        return []
    gen = GENERATIONS.get(generation or "")
    if gen is None:
        return [
            "another head: sigmoid or logits with the threshold on the CPU",
            "FP32 (--gpu_precision_loss_allowed=false)",
            "--gpu_backend=cl, or a newer TFLite runtime in the app (a delegate whose softmax "
            "subtracts the max); check with a newer benchmark_model binary on this phone",
        ]
    return list(gen.remedies)


def _runtime_evidence(reports: list[dict]) -> None:
    """The "newer runtime" remedy, measured: for each failing phone, the same variant and
    delegate on another phone of the same model that runs a newer GPU delegate generation
    (virtual phones started with --delegate) is added to its alternatives."""
    order = list(GENERATIONS)
    for report in reports:
        gen, instead = report.get("gpu_delegate"), report["recommendation"].get("instead_of")
        if gen not in order or not instead:
            continue
        for other in reports:
            newer = other.get("gpu_delegate")
            if other["model"] != report["model"] or newer not in order:
                continue
            if order.index(newer) <= order.index(gen):
                continue
            match = (
                c
                for c in other["matrix"]
                if c["variant"] == instead["variant"] and c["delegate"] == instead["delegate"]
            )
            cell = next(match, None)
            if cell is None:
                continue
            report["recommendation"]["alternatives"].append(
                {
                    **{k: cell.get(k) for k in _ENTRY_KEYS},
                    "kind": "newer-runtime",
                    "delta_pct": None,
                    "measured": True,
                    "note": f"GPU delegate {newer} on {other['serial']} (same model)",
                }
            )


_ENTRY_KEYS = ("config", "variant", "delegate", "verdict", "label", "correct", "latency_ms", "iou")


def _summary(cells: list[MatrixCell], locs: list[dict], largest: dict | None) -> str:
    wrong = [c for c in cells if c.values_wrong]
    if not wrong:
        text = f"no failure: {sum(c.correct for c in cells)} of {len(cells)} cells correct"
        if largest and not largest["exposed"]:
            text += (
                f"; not exposed to the FP16 softmax overflow (largest logit "
                f"{largest['value']:.2f} < {largest['limit']:.2f})"
            )
        elif largest:
            text += (
                f"; the model is exposed to the FP16 softmax overflow (largest logit "
                f"{largest['value']:.2f} > {largest['limit']:.2f}) but this phone's softmax is right"
            )
        return text
    groups: dict[tuple[str, str, str], list[str]] = {}
    for c in wrong:
        match = (x for x in locs if x["variant"] == c.variant and x["delegate"] == c.delegate)
        culprit = (next(match, None) or {}).get("culprit")
        where = f"; first diverging: {culprit['op']}#{culprit['op_index']}" if culprit else ""
        groups.setdefault((c.variant, c.label, where), []).append(delegate_label(c.delegate))
    return "; ".join(
        f"{variant}: {label} on {', '.join(delegates)}{where}"
        for (variant, label, where), delegates in groups.items()
    )


def _check(opts: DiagnoseOptions) -> list[str]:
    """Bad options fail here, in one line, before anything runs; the delegates, parsed once."""
    if not (math.isfinite(opts.tolerance) and opts.tolerance > 0):
        raise UsageError(f"--tolerance must be a positive number, got {opts.tolerance}")
    checks.seconds(opts.timeout, "--timeout", positive=True)  # before variants are made
    checks.seconds(opts.wait_lock, "--wait")
    checks.count(opts.threads, "--threads", 1, 256)
    if opts.probe_images < 1:
        raise UsageError("--probe-images must be at least 1")
    return [d.value for d in resolve_delegates(opts.delegates or "")]


def _bench(opts: DiagnoseOptions, variants: str, model: str, delegates: list[str], io, on_cell):
    """The matrix, measured by ``harness bench`` (stored as its run)."""
    return run_bench(
        BenchOptions(
            model=model,
            devices=opts.devices,
            adb=opts.adb,
            variants=variants,
            delegates=",".join(delegates),
            threads=opts.threads,
            runs=opts.runs,
            warmup=opts.warmup,
            repeats=opts.repeats,
            eval_set=opts.eval_set,
            images=opts.images,
            store=opts.store,
            timeout=opts.timeout,
            wait_lock=opts.wait_lock,
            io=io,
        ),
        on_cell=on_cell,
    )


def _device_report(dev: dict, cells, locs, largest, device) -> dict:
    info = dev["info"]
    faults = device.probe().props.get("ro.harness.faults") if dev["virtual"] else None
    return {
        "serial": dev["serial"],
        "model": dev["model"],
        "virtual": dev["virtual"],
        "soc": info.get("soc"),
        "gpu": info.get("gpu"),
        "profile": info.get("profile") or None,
        "gpu_delegate": info.get("gpu_delegate") or None,
        "emulated_faults": faults.split(",") if faults else [],
        "summary": _summary(cells, locs, largest),
        "failures": sum(c.values_wrong or c.verdict == "delegate-failed" for c in cells),
        "matrix": [c.to_dict() for c in cells],
        "localizations": locs,
        "recommendation": recommend(cells),
        "remedies": _remedies(info.get("gpu_delegate"), locs),
        "notes": _notes(cells, bool(dev["virtual"])),
    }


def run_diagnose(
    opts: DiagnoseOptions,
    progress: Progress | None = None,
    on_cell: Callable[[Cell], None] | None = None,
) -> dict:
    """Diagnose ``opts.model`` on the selected phones; returns (and stores) the diagnosis."""
    say = progress or (lambda _msg: None)
    delegates = _check(opts)
    say("planning variants")
    plan = plan_model(opts.model, opts.heads, opts.precision, IoOptions.from_dict(opts.io))
    bench_io = opts.io if plan.io is None else plan.io
    say("measuring the matrix (harness bench)")
    outcome = _bench(opts, plan.variants, plan.model, delegates, bench_io, on_cell)
    io = IoOptions.from_dict(bench_io)
    model_name, target_list = resolve_targets(plan.model, plan.variants, io)
    targets = {t.variant_id: t for t in target_list}
    name, images, masks = eval_images(opts.eval_set, opts.images, target_list[0], io)
    eval_set = EvalSet(name, images, masks)
    say("checking exposure on the desktop")
    findings = {t.variant_id: exposure(t.path, preprocess(images, t.input)) for t in target_list}
    largest = _largest_logit(findings, target_list)
    heads = {t.variant_id: _head(t) for t in target_list}
    with Store(opts.store) as store:
        devices = store.devices(outcome.run_id)
        all_cells = []
        for c in store.cells(outcome.run_id):
            nonfinite, worst = _evidence(store, c, targets.get(c.variant_id))
            all_cells.append(classify(c, heads.get(c.variant_id, c.variant_id), nonfinite, worst))
    device_reports = []
    for dev in devices:
        cells = [c for c in all_cells if c.cell.device == dev["id"]]
        device = _device(str(dev["id"]), opts)  # SERIAL@SERVER: that server's phone
        locs = _localize_device(device, cells, opts, targets, eval_set, findings, say)
        device_reports.append(_device_report(dev, cells, locs, largest, device))
    _runtime_evidence(device_reports)
    variants = [
        {
            "id": t.variant_id,
            "head": heads[t.variant_id],
            "sha256": t.sha256,
            "file": str(t.path),
            "built": t.variant_id in plan.built,
        }
        for t in target_list
    ]
    diagnosis = _clean(
        {
            "schema": SCHEMA,
            "run_id": outcome.run_id,
            "model": model_name,
            "model_path": plan.model,
            "store": opts.store,
            "heads": list(heads.values()),
            "variants": variants,
            "delegates": delegates,
            "eval_set": {**eval_set.describe(), "source": opts.eval_set},
            "tolerance": opts.tolerance,
            "largest_logit": largest,
            "exposure": {v: [f.to_dict() for f in items] for v, items in findings.items()},
            "exposure_summary": _exposure_summary(findings),
            "devices": device_reports,
            "warnings": outcome.warnings,
        }
    )
    with Store(opts.store) as store:
        store.add_diagnosis(outcome.run_id, diagnosis)
    return diagnosis
