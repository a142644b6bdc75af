"""``harness bench --gpu-init``: GPU init time cold (no kernel cache) and warm (serialized
kernels), per GPU cell.

Two one-run invocations with ``--delegate_serialize_dir`` (a directory of the cell's own,
emptied first) and ``--delegate_serialize_token``: the first compiles the GPU kernels and
serializes them (cold), the second loads them (warm). The tool's ``Init`` time of each is
stored as ``init_cold_ms`` / ``init_warm_ms`` in the cell's latency dict, with
``kernel_cache``: ``written`` when the first invocation left a file in the directory, else
``not written`` (a delegate that ignores the flags: the warm figure is then another cold one).
On a virtual phone the compile is emulated (docs/virtual-phone.md).
"""

from __future__ import annotations

from harness.bench.stage import KERNEL_CACHE
from harness.devices.device import quote
from harness.runner import BenchmarkInvocation, Delegate


def init_pass(device, staged, target, delegate: Delegate, s) -> tuple[dict, str]:  # noqa: ANN001
    """-> (latency keys, log). CellFailed when an invocation fails."""
    from dataclasses import replace

    from harness.bench.measure import CellFailed, _failure, _invoker

    directory = f"{KERNEL_CACHE}/init-{target.sha256[:16]}-{delegate.value}"
    fresh = f"rm -rf {quote(directory)} && mkdir -p {quote(directory)}"
    if not device.retrying(lambda: device.shell(fresh), "empty kernel cache").ok:
        raise CellFailed(f"gpu init pass: cannot empty {directory}")
    inv = BenchmarkInvocation(
        graph=staged.models[target.sha256],
        delegate=delegate,
        threads=s.threads,
        warmup_runs=0,
        runs=1,
        exact_counts=True,
        delegate_serialize_dir=directory,
        delegate_serialize_token=target.sha256[:16],
    )
    invoke = _invoker(device, staged, inv, replace(s, runner="shell"))
    inits, texts = [], []
    for what in ("cold", "warm"):
        returncode, text, log, _ = invoke()
        texts.append(text)
        failure = _failure(returncode, log)
        if failure:
            raise CellFailed(f"gpu init pass ({what}): {failure}", "\n".join(texts))
        init_ms = log.init_us / 1000.0 if log.init_us is not None else log.init_ms
        inits.append(init_ms)
        if what == "cold":
            listing = device.shell(f"ls {quote(directory)}")
            written = bool(listing.ok and listing.out.strip())
    cold, warm = inits
    return {
        "init_cold_ms": cold,
        "init_warm_ms": warm,
        "kernel_cache": "written" if written else "not written",
    }, "\n".join(texts)
