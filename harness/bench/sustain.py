"""``harness bench --sustain DURATION``: back-to-back inference for minutes, with the phone's
thermal zones and CPU/GPU frequencies sampled, and throttling detected.

After a cell's latency pass, ``benchmark_model`` runs in *slices* of ``slice_s`` seconds each
(``--min_secs=slice_s``, no warmup, until ``DURATION`` is spent); after each slice one shell
command reads the thermal zones, the CPU ``scaling_cur_freq`` files and the GPU clock (where
the phone exposes one). Each slice is one sample: its mean latency, the hottest zone, the
highest CPU frequency, the GPU frequency. Between slices the tool restarts (init, a few hundred
ms on a virtual phone): the load is near-continuous, not perfectly so.

Samples go to the store's ``sustain_samples`` table; the cell's latency dict gets ``sustain``:
the summary of :func:`summarize`. **Throttling** is a latency drift (the last fifth of the run
vs the first fifth, medians) above :data:`DRIFT_PCT` together with a frequency drop (CPU or GPU,
highest first-fifth vs lowest last-fifth) above :data:`FREQ_DROP_PCT`; a drift without a
frequency drop is reported as drift, not throttling.
"""

from __future__ import annotations

import math
import re
import statistics
import time

from harness.errors import DeviceTimeout, UsageError
from harness.runner import BenchmarkInvocation, Delegate

DRIFT_PCT = 10.0
FREQ_DROP_PCT = 5.0
MAX_DURATION_S = 4 * 3600.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_GPU_CLOCKS = ("/sys/kernel/gpu/gpu_clock", "/sys/class/kgsl/kgsl-3d0/gpuclk")
_SAMPLE = (
    'for z in /sys/class/thermal/thermal_zone*; do echo "T $(cat $z/temp 2>/dev/null)"; done; '
    "for f in /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq; do "
    'echo "C $(cat $f 2>/dev/null)"; done; '
    + "; ".join(f"[ -r '{g}' ] && echo \"G{i} $(cat '{g}')\"" for i, g in enumerate(_GPU_CLOCKS))
    + "; true"
)


def parse_duration(text: str | None) -> float | None:
    """``180``, ``90s``, ``3m``, ``1.5min``, ``1h`` -> seconds; UsageError otherwise."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h)?\s*", text)
    if not m:
        raise UsageError(f"--sustain {text}: a duration like 180, 90s, 3m or 1h")
    seconds = float(m[1]) * _UNITS[m[2] or ""]
    if not 1.0 <= seconds <= MAX_DURATION_S:
        raise UsageError(f"--sustain must be 1 s to {MAX_DURATION_S / 3600:g} h, got {text}")
    return seconds


def slice_seconds(duration: float) -> float:
    """About 60 samples per run, each slice 1-10 s."""
    return max(1.0, min(10.0, duration / 60.0))


def parse_sample(text: str) -> dict:
    """The sampling command's output -> ``temp_c`` (hottest zone), ``cpu_khz`` (highest),
    ``gpu_khz`` (or None). Millidegrees and whole degrees both read as °C."""
    temps, cpus, gpu = [], [], None
    for line in text.splitlines():
        tag, _, value = line.strip().partition(" ")
        value = value.strip()
        if not re.fullmatch(r"-?[0-9]+", value):
            continue
        n = int(value)
        if tag == "T":
            temps.append(n / 1000.0 if abs(n) >= 1000 else float(n))
        elif tag == "C":
            cpus.append(float(n))
        elif tag == "G0" and gpu is None:  # Mali (Samsung): MHz
            gpu = n * 1000.0
        elif tag == "G1" and gpu is None:  # Adreno kgsl: Hz
            gpu = n / 1000.0
    return {
        "temp_c": max(temps) if temps else None,
        "cpu_khz": max(cpus) if cpus else None,
        "gpu_khz": gpu,
    }


def _fifth(values: list, last: bool) -> list:
    k = max(1, len(values) // 5)
    return values[-k:] if last else values[:k]


def summarize(samples: list[dict], emulated: bool, gpu: bool = False) -> dict:
    """The cell's ``latency["sustain"]``; ``gpu``: a GPU cell, whose GPU clock is the frequency
    that matters (else the CPU's; the other unit is used when the phone does not expose it)."""
    lat = [s["latency_ms"] for s in samples if s.get("latency_ms") is not None]
    out: dict = {"samples": len(samples), "emulated": emulated}
    if not lat:
        return out
    first, last = statistics.median(_fifth(lat, False)), statistics.median(_fifth(lat, True))
    drift = (last - first) / first * 100 if first > 0 else None
    drops = {}
    for key, name in (("cpu_khz", "CPU"), ("gpu_khz", "GPU")):
        values = [s[key] for s in samples if s.get(key)]
        if len(values) >= 2:
            top, low = max(_fifth(values, False)), min(_fifth(values, True))
            drops[name] = (top - low) / top * 100 if top > 0 else 0.0
    temps = [s["temp_c"] for s in samples if s.get("temp_c") is not None]
    which = "GPU" if gpu else "CPU"
    if which not in drops:
        which = next(iter(drops), which)
    drop = drops.get(which)
    throttled = (
        drift is not None and drift > DRIFT_PCT and drop is not None and drop > FREQ_DROP_PCT
    )
    reason = ""
    if throttled:
        reason = f"latency {drift:+.1f}% with the {which} frequency {-drops[which]:.1f}%"
    elif drift is not None and drift > DRIFT_PCT:
        reason = f"latency {drift:+.1f}% without a frequency drop: drift, not throttling"
    out.update(
        avg_ms=statistics.fmean(lat),
        first_ms=first,
        last_ms=last,
        drift_pct=drift,
        cpu_freq_drop_pct=drops.get("CPU"),
        gpu_freq_drop_pct=drops.get("GPU"),
        temp_start_c=temps[0] if temps else None,
        temp_end_c=temps[-1] if temps else None,
        temp_max_c=max(temps) if temps else None,
        throttled=throttled,
        throttle_reason=reason,
        throttle_pct=max(drift, 0.0) if drift is not None else None,
    )
    return out


def sustain_pass(device, staged, target, delegate: Delegate, s) -> tuple[list[dict], dict, str]:  # noqa: ANN001
    """Back-to-back slices for ``s.sustain`` seconds -> (samples, summary, log of the last
    slice). A slice that fails ends the run: the samples so far are kept and the summary's
    ``error`` says why (the gate then treats the sustained figures as not measured)."""
    from dataclasses import replace

    from harness.bench.measure import CellFailed, _avg_us, _failure, _invoker

    duration = float(s.sustain)
    slice_s = slice_seconds(duration)
    inv = BenchmarkInvocation(
        graph=staged.models[target.sha256],
        delegate=delegate,
        threads=s.threads,
        warmup_runs=0,
        runs=1,
        exact_counts=False,
        max_secs=slice_s * 4 + 30,
        extra_flags=(f"--min_secs={slice_s:g}", "--warmup_min_secs=0"),
    )
    invoke = _invoker(device, staged, inv, replace(s, runner="shell"))

    def sample() -> dict:
        result = device.retrying(lambda: device.shell(_SAMPLE, timeout=30), "thermal sample")
        return parse_sample(result.out)

    samples = [{"seq": 0, "t_s": 0.0, "latency_ms": None, **sample()}]
    start = time.monotonic()
    text, virtual, error = "", False, None
    while time.monotonic() - start < duration:
        try:
            returncode, text, log, _ = invoke()
        except (CellFailed, DeviceTimeout, TimeoutError) as exc:
            error = f"sustained run stopped at {time.monotonic() - start:.0f}s: {exc}"
            break
        failure = _failure(returncode, log)
        if failure:  # the samples so far are kept; the summary says why it stopped
            error = f"sustained run stopped at {time.monotonic() - start:.0f}s: {failure}"
            break
        avg = _avg_us(log)
        virtual = virtual or bool(log.virtual)
        samples.append(
            {
                "seq": len(samples),
                "t_s": time.monotonic() - start,
                "latency_ms": avg / 1000.0 if avg is not None and math.isfinite(avg) else None,
                **sample(),
            }
        )
    emulated = virtual and "Emulated heating on" in text
    summary = summarize(samples, emulated, delegate.is_gpu)
    if error:
        summary["error"] = error
    return samples, summary, text
