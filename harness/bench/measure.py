"""The two passes of a cell on a device: latency (benchmark_model timings) and accuracy
(outputs of benchmark_model on every eval input, via one pushed on-device script)."""

from __future__ import annotations

import enum
import re
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.bench import stats
from harness.bench.plan import Target
from harness.bench.stage import KERNEL_CACHE, REMOTE_ROOT, Staged
from harness.cell import DELEGATE_FAILED
from harness.devices.device import Device, quote, sh_join
from harness.errors import DeviceTimeout
from harness.runner import (
    BenchmarkInvocation,
    BenchmarkLog,
    Delegate,
    WrongBenchmarkTool,
    is_compiled_model_tool,
    parse_log,
)

# Key of a latency dict that carries bulk rows (op profile, sustained series) from the device
# worker to the finisher, which writes them to their own store tables and drops the key.
BULK = "_bulk"

_SIGNALS = {134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV", 136: "SIGFPE", 135: "SIGBUS"}


class Runner(enum.Enum):
    """How the latency pass runs benchmark_model on the phone (the accuracy pass always uses
    the binary: the APK writes no output file)."""

    SHELL = "shell"  # the binary, started by `adb shell` (taskset to the big cores if possible)
    APK = "apk"  # the benchmark app's Activity, in the foreground (harness/bench/apk.py)

    @classmethod
    def parse(cls, text: str) -> Runner:
        try:
            return cls(text)
        except ValueError:
            from harness.errors import UsageError

            raise UsageError(f"--runner {text}: use shell or apk") from None


class CellFailed(Exception):
    """A cell could not be measured; ``reason`` is one line for the store and report."""

    def __init__(self, reason: str, log: str = "") -> None:
        super().__init__(reason)
        self.reason = " ".join(reason.split())
        self.log = log


@dataclass(frozen=True)
class Settings:
    runs: int = 20
    warmup: int = 2
    repeats: int = 2
    threads: int | None = None
    timeout: float = 120.0
    affinity: str | None = None  # taskset mask, when the device supports it
    runner: str = Runner.SHELL.value
    target_ci: float | None = None  # --target-ci PCT: add invocations until the CI is this tight
    profile_ops: bool = False  # --profile-ops: one more invocation with op profiling
    gpu_init: bool = False  # --gpu-init: GPU cells measure init cold and warm (kernel cache)
    sustain: float | None = None  # --sustain: seconds of back-to-back inference (sustain.py)
    max_time: float = 300.0  # --max-time: seconds of benchmark_model a cell's latency pass may use


def _stats_ms(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def _failure(result_code: int, log: BenchmarkLog) -> str | None:
    if log.verdict.value == "failed":  # the judge reads this prefix (harness.cell.judge)
        return f"{DELEGATE_FAILED}: " + (log.error_lines[0] if log.error_lines else "no detail")
    if result_code in _SIGNALS:
        return f"benchmark_model crashed ({_SIGNALS[result_code]}, exit {result_code})" + (
            f": {log.error_lines[0]}" if log.error_lines else ""
        )
    if result_code != 0 or log.failed:
        detail = log.error_lines[0] if log.error_lines else "no error line"
        return f"benchmark_model failed (exit {result_code}): {detail}"
    return None


def _command(inv: BenchmarkInvocation, staged: Staged, affinity: str | None) -> str:
    argv = inv.argv(binary=staged.binary)
    prefix = f"taskset {affinity} " if affinity else ""
    return f"cd {quote(REMOTE_ROOT)} && {prefix}{sh_join(argv)}"


def _avg_us(log: BenchmarkLog) -> float | None:
    """Mean inference time: the steady-state stat line, else the summary line's
    ``Inference (avg)`` (some builds of the benchmark APK log only the summary)."""
    if log.inference is not None and log.inference.avg is not None:
        return log.inference.avg
    return log.inference_avg_us


def _invoker(device: Device, staged: Staged, inv: BenchmarkInvocation, s: Settings):
    """One latency invocation -> (exit code, log text, parsed log, seconds), per runner."""
    if s.runner == Runner.APK.value:
        from harness.bench import apk

        def run_apk():
            run = apk.run_once(device, inv.flags(), s.timeout)
            if not run.started:
                raise CellFailed(run.log[:300], run.log)
            return run.returncode, run.log, apk.parse(run), run.seconds

        return run_apk
    command = _command(inv, staged, s.affinity)

    def run_shell():
        result = device.shell(command, timeout=s.timeout)
        text = result.out + ("\n" + result.err if result.err else "")
        return result.returncode, text, parse_log(result.out, result.err), result.seconds

    return run_shell


def delegation(log: BenchmarkLog, delegate: Delegate) -> dict:
    return {
        "verdict": log.verdict.value if delegate.has_delegation_verdict else "none",
        "unsupported_ops": [[u.op, u.reason] for u in log.unsupported_ops],
        "gpu_backend": log.gpu_backend.value if log.gpu_backend else None,
        "cl_to_gl_fallback": bool(log.cl_to_gl_fallback),
        "replaced_nodes": log.replaced_nodes,
        "total_nodes": log.total_nodes,
        "virtual": bool(log.virtual),
    }


def latency_pass(
    device: Device, staged: Staged, target: Target, delegate: Delegate, s: Settings
) -> tuple[dict, dict, str]:
    """``repeats`` invocations with exact warmup/run counts -> (latency, delegation, log)."""
    inv = BenchmarkInvocation(
        graph=staged.models[target.sha256],
        delegate=delegate,
        threads=s.threads,
        warmup_runs=s.warmup,
        runs=s.runs,
        exact_counts=True,
        report_peak_memory_footprint=True,
    )
    logs, texts, bm_seconds = _invocations(_invoker(device, staged, inv, s), staged, s)
    latency = _summary(logs, staged, s, bm_seconds)
    texts += _optional_passes(latency, device, staged, target, delegate, s)
    return latency, delegation(logs[-1], delegate), "\n".join(texts)


def _invocations(
    invoke, staged: Staged, s: Settings
) -> tuple[list[BenchmarkLog], list[str], float]:
    """``repeats`` invocations; with --target-ci, more until the interval is tight enough or
    --max-time of benchmark_model time is spent (harness.bench.stats). -> (parsed logs, log
    texts, wall seconds of the benchmark_model commands themselves)."""
    logs: list[BenchmarkLog] = []
    texts: list[str] = []
    bm_seconds = 0.0
    while not stats.enough([_avg_us(lg) for lg in logs], s.repeats, s.target_ci):
        extra = len(logs) >= s.repeats  # past the minimum: only --target-ci asks for more
        if extra and (bm_seconds >= s.max_time or len(logs) >= stats.MAX_INVOCATIONS):
            break
        try:
            returncode, text, log, seconds = invoke()
        except (DeviceTimeout, TimeoutError) as exc:
            what = (
                "latency pass (apk runner): no timings in logcat"
                if s.runner == Runner.APK.value
                else "latency pass timed out"
            )
            raise CellFailed(f"{what} after {s.timeout:g}s", "\n".join(texts)) from exc
        bm_seconds += seconds
        texts.append(text)
        if is_compiled_model_tool(text):  # LiteRT's other benchmark_model: no outputs to check
            raise CellFailed(str(WrongBenchmarkTool(staged.binary)), "\n".join(texts))
        failure = _failure(returncode, log)
        if failure:
            raise CellFailed(failure, "\n".join(texts))
        if _avg_us(log) is None:
            raise CellFailed("benchmark_model printed no inference timings", "\n".join(texts))
        logs.append(log)
    return logs, texts, bm_seconds


def _summary(logs: list[BenchmarkLog], staged: Staged, s: Settings, bm_seconds: float) -> dict:
    """The cell's latency JSON from its invocations (docs/results-schema.md)."""
    avgs = [_avg_us(lg) / 1000.0 for lg in logs]
    mean = statistics.fmean(avgs)
    last = logs[-1]

    def pooled(attr: str, fn):
        values = [
            getattr(lg.inference, attr)
            for lg in logs
            if lg.inference is not None and getattr(lg.inference, attr) is not None
        ]
        return fn(values) / 1000.0 if values else None

    inits = [lg.init_us / 1000.0 for lg in logs if lg.init_us is not None]
    apk = s.runner == Runner.APK.value
    return {
        "runner": s.runner,
        "runner_sha256": staged.apk_sha256 if apk else staged.binary_sha256,
        "accuracy_runner": Runner.SHELL.value,
        "runs": s.runs,
        "warmup_runs": s.warmup,
        "repeats": s.repeats,
        "threads": s.threads,
        "affinity": None if apk else s.affinity,  # the app: not pinned
        "init_ms": statistics.fmean(inits) if inits else last.init_ms,
        "first_ms": _stats_ms(last.first_inference_us),
        "warmup_avg_ms": _stats_ms(last.warmup_avg_us),
        "avg_ms": mean,
        "std_ms": pooled("std", statistics.fmean),
        "min_ms": pooled("min", min),
        "max_ms": pooled("max", max),
        "p5_ms": pooled("p5", statistics.fmean),
        "median_ms": pooled("median", statistics.fmean),
        "p95_ms": pooled("p95", statistics.fmean),
        "invocation_avg_ms": avgs,
        "spread_pct": (max(avgs) - min(avgs)) / mean * 100 if mean > 0 else 0.0,
        "peak_mem_mb": last.peak_mem_mb,
        "bm_s": bm_seconds,
        "invocation_p95_ms": [_stats_ms(lg.inference.p95) if lg.inference else None for lg in logs],
        "invocation_init_ms": [_stats_ms(lg.init_us) for lg in logs],
        **stats.ci_fields(
            avgs, s.target_ci, stats.enough(avgs, s.repeats, s.target_ci) if s.target_ci else None
        ),
    }


def _optional_passes(
    latency: dict, device: Device, staged: Staged, target: Target, delegate: Delegate, s: Settings
) -> list[str]:
    """Optional passes after the timed invocations (their cost stays out of them), into
    ``latency``; their log texts. A failure of one is recorded in its key ({"error": ...}) and
    never discards the latency measured."""
    texts = []
    if s.profile_ops:
        from harness.bench import profile_ops

        try:
            ops, latency["op_profile"], text = profile_ops.profile_pass(
                device, staged, target, delegate, s
            )
            latency.setdefault(BULK, {})["op_profile"] = ops
        except CellFailed as exc:
            latency["op_profile"], text = {"error": exc.reason}, exc.log
        texts.append(text)
    if s.gpu_init and delegate.is_gpu:
        from harness.bench import gpu_init

        try:
            keys, text = gpu_init.init_pass(device, staged, target, delegate, s)
            latency.update(keys)
        except CellFailed as exc:
            latency["gpu_init_error"], text = exc.reason, exc.log
        texts.append(text)
    if s.sustain:
        from harness.bench import sustain

        samples, latency["sustain"], text = sustain.sustain_pass(
            device, staged, target, delegate, s
        )
        latency.setdefault(BULK, {})["sustain"] = samples
        texts.append(text)
    return texts


_STATUS = re.compile(r"^harness-status (\d+) (\d+)$", re.M)


def accuracy_pass(
    device: Device, staged: Staged, target: Target, delegate: Delegate, s: Settings, cell_id: str
) -> tuple[np.ndarray, str, float]:
    """Raw device outputs [N, sample_bytes] (uint8) for every eval input, the run log, and
    the wall time of the on-device script (benchmark_model once per input)."""
    inputs = staged.inputs[staged.input_keys[target.sha256]]
    out_dir = f"{REMOTE_ROOT}/out/current"  # one per device: the script recreates it
    cache = KERNEL_CACHE
    common = BenchmarkInvocation(
        graph=staged.models[target.sha256],
        delegate=delegate,
        threads=s.threads,
        warmup_runs=0,
        runs=1,
        exact_counts=True,
        delegate_serialize_dir=cache if delegate.is_gpu else None,
        delegate_serialize_token=target.sha256[:16] if delegate.is_gpu else None,
    ).flags()
    name = target.input.name
    args = [
        "sh",
        staged.accuracy_script,
        staged.binary,
        out_dir,
        staged.input_dirs[target.sha256],
        str(len(inputs)),
        name,
        name.replace(":", "::"),
        ",".join(str(d) for d in target.input.shape),
        "--",
        *common,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = device.shell(args, timeout=s.timeout * max(1, len(inputs)))
        except DeviceTimeout as exc:
            raise CellFailed(f"accuracy pass timed out after {s.timeout * len(inputs):g}s") from exc
        statuses = {int(i): int(rc) for i, rc in _STATUS.findall(result.out)}
        if len(statuses) != len(inputs):
            raise CellFailed(
                f"accuracy script stopped after {len(statuses)} of {len(inputs)} "
                f"inputs (exit {result.returncode})",
                result.out + result.err,
            )
        bad = sorted(i for i, rc in statuses.items() if rc != 0)
        if bad:
            first = bad[0]
            log_file = f"{out_dir}/{first}.log"
            log_text = (
                device.retrying(lambda: device.read_file(log_file), "read log") or b""
            ).decode(errors="replace")
            failure = _failure(statuses[first], parse_log(log_text)) or f"exit {statuses[first]}"
            raise CellFailed(f"accuracy pass, input {first}: {failure}", log_text)
        local_out = Path(tmp) / "all.bin"
        # One transfer for every output; a pull is safe to repeat if the link drops.
        device.retrying(lambda: device.pull(f"{out_dir}/all.bin", local_out), "pull outputs")
        data = local_out.read_bytes()
    expected = target.sample_bytes * len(inputs)
    if len(data) != expected:
        raise CellFailed(
            f"wrong output size: {len(data)} bytes, expected {expected} "
            f"({len(inputs)} x {target.sample_bytes})",
            result.out,
        )
    raw = np.frombuffer(data, np.uint8).reshape(len(inputs), target.sample_bytes)
    return raw, result.out, result.seconds
