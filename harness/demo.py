"""The main job end to end (``harness demo``): each step is a real ``harness`` command line,
printed before it runs, so the demo shows exactly what a user would type.

Uses an attached SM-G973 if there is one; otherwise starts a virtual SM-G973F, which runs the
2019 OpenGL GPU delegate the seed project's app had (docs/virtual-phone.md), plus a second one
with ``--delegate current`` (a newer TFLite runtime, to prove that remedy). Then: devices ->
probe -> train -> convert -> bench -> diagnose -> report -> gate. The model is trained until it
is confident (softmax inputs past ln(65504) = 11.09 on some pixels), so the diagnose step shows
the Galaxy S10 failure: NaN under GPU FP16 on the 2019 delegate, SOFTMAX the first diverging op,
right on FP32, the CPU and the current delegate, and a head to ship instead. Work already done
(a trained model, its variants) is reused unless ``--fresh``.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from harness.devices import adb
from harness.errors import GateFailed, HarnessError, PartialRun
from harness.ui import console
from harness.virtual import manager

MODEL = Path("models") / "demo-sinet128"
STORE = Path("results") / "demo.db"
REPORTS = Path("results") / "demo-report"
HEADS = "softmax,sigmoid,logits"
PRECISIONS = "fp32,fp16,int8"
BENCH_TAG, DIAGNOSE_TAG = "demo-bench", "demo-diagnose"
# A net trained for a few epochs is not yet confident (largest logit ~6-7); a long training
# reaches past 17 (docs/diagnose.md). Scaling its logits by 3 (temperature 1/3: the masks do not
# change) makes it as confident as that, so its softmax inputs pass ln(65504) = 11.09 on its
# confident pixels, where the 2019 OpenGL delegate overflows at FP16.
LOGIT_SCALE = 3.0


def _harness(*args: str) -> None:
    """Run one harness command in this process, as typed on a command line."""
    from harness.cli import app

    console().print(f"[bold cyan]$ harness {shlex.join(args)}[/]")
    code = app(args=list(args), prog_name="harness", standalone_mode=False)
    if isinstance(code, int) and code:
        raise HarnessError(f"step 'harness {args[0]}' exited {code}", exit_code=code)


def _latest_run() -> str:
    """The run the previous step stored (tagged next, so report and gate name it)."""
    from harness.store import Store

    with Store(STORE) as store:
        return store.resolve_run(None)


def _trained_for_demo(model: Path) -> bool:
    """A finished training of this demo's recipe (older demos trained without --logit-scale)."""
    import json

    try:
        info = json.loads((model / "train.json").read_text())
    except (OSError, ValueError):
        return False
    scale = (info.get("config") or {}).get("logit_scale")
    return (model / "model.keras").is_file() and scale == LOGIT_SCALE


def _has_variants(model: Path) -> bool:
    from harness.convert.variants import MANIFEST_NAME, read_manifest

    if not (model / MANIFEST_NAME).is_file():
        return False
    have = {v.id for v in read_manifest(model).variants}
    want = {f"{h}-{p}" for h in HEADS.split(",") for p in PRECISIONS.split(",")}
    return want <= have


def _start_virtual(servers: list) -> list:
    """The virtual SM-G973F with its profile's 2019 OpenGL delegate, and the same phone with a
    current TFLite runtime (the "newer runtime" remedy, measured)."""
    console().rule("[bold]No SM-G973 attached: starting virtual SM-G973F phones")
    started = []
    try:
        for delegate, why in (
            (None, "GPU delegate gl-2019: the 2019 OpenGL delegate (the profile's default)"),
            ("current", "the same phone with a current TFLite runtime"),
        ):
            flag = f" --delegate {delegate}" if delegate else ""
            console().print(
                f"[bold cyan]$ harness virtual start --profile SM-G973F{flag}[/]  # {why}"
            )
            started.append(manager.start("SM-G973F", servers=servers, delegate=delegate))
    except BaseException:
        for record in started:
            manager.stop(record.serial)
        raise
    return started


def _train(fresh: bool, epochs: int) -> None:
    console().rule("[bold]2. Train a light portrait-segmentation net (synthetic portraits)")
    if fresh and MODEL.exists():
        shutil.rmtree(MODEL)
    if _trained_for_demo(MODEL):
        console().print(f"{MODEL} is already trained (use --fresh to retrain)")
        return
    if MODEL.exists():  # an older demo's model (no --logit-scale): not confident enough
        shutil.rmtree(MODEL)
    _harness(
        "train",
        "--data",
        "synthetic",
        "--arch",
        "sinet-lite",
        "--input-size",
        "128",
        "--epochs",
        str(epochs),
        "--logit-scale",
        f"{LOGIT_SCALE:g}",
        "--out",
        str(MODEL),
    )


def _convert(fresh: bool) -> None:
    console().rule("[bold]3. Convert: output heads x precisions")
    if _has_variants(MODEL) and not fresh:
        console().print(f"{MODEL}/variants.json already has {HEADS} x {PRECISIONS}")
    else:
        _harness("convert", str(MODEL), "--heads", HEADS, "--precisions", PRECISIONS)


def _bench_and_diagnose(serial: str, diagnose_devices: list[str]) -> None:
    # bench and diagnose: the same model, delegate configs and store.
    matrix = ("--model", str(MODEL), "--delegates", "cpu,gpu,gpu-fp32", "--store", str(STORE))
    console().rule(f"[bold]4. Bench on {serial}: latency and accuracy per delegate")
    try:
        _harness("bench", "--device", serial, *matrix)
    except PartialRun as exc:  # failed cells are findings; the report shows them
        console().print(f"[yellow]{exc}[/]")
    _harness("tag", _latest_run(), BENCH_TAG, "--store", str(STORE))
    console().rule(f"[bold]5. Diagnose softmax / GPU-delegate failures on {serial}")
    _harness("diagnose", *diagnose_devices, *matrix)
    _harness("tag", _latest_run(), DIAGNOSE_TAG, "--store", str(STORE))


def _report_and_gate() -> None:
    console().rule("[bold]6. Report")
    _harness("report", BENCH_TAG, DIAGNOSE_TAG, "--store", str(STORE), "--out", str(REPORTS))
    console().rule("[bold]7. Release gate on the bench run (benchmarks/release.toml)")
    try:
        _harness(
            "gate",
            BENCH_TAG,
            "--store",
            str(STORE),
            "--policy",
            "benchmarks/release.toml",
            "--junit",
            str(REPORTS / "gate-junit.xml"),
        )
        console().print("[bold green]gate verdict: PASS[/] (harness gate exits 0)")
    except GateFailed as exc:
        console().print(f"[bold red]gate verdict: FAIL[/] (harness gate exits 1): {exc}")
    console().print(f"report: {REPORTS / 'report.html'}")


def run(
    adb_values: list[str] | None = None, keep: bool = False, fresh: bool = False, epochs: int = 4
) -> None:
    servers = adb.resolve_servers(adb_values)
    entries = adb.list_devices(servers)
    real = [
        e
        for e in entries
        if e.state == "device" and adb.match(e, "SM-G973") and not e.serial.startswith("127.0.0.1:")
    ]
    if real:
        serial, started = real[0].serial, []
        console().rule(f"[bold]Using the attached phone {serial}")
    else:
        started = _start_virtual(servers[:1])
        serial = started[0].serial
    # A real phone is diagnosed alone; the virtual pair side by side (same model, two runtimes).
    diagnose_devices = [a for s in [r.serial for r in started] or [serial] for a in ("--device", s)]
    try:
        console().rule("[bold]1. Phones")
        _harness("devices")
        _harness("probe", "--device", serial)
        _train(fresh, epochs)
        _convert(fresh)
        _bench_and_diagnose(serial, diagnose_devices)
        _report_and_gate()
    finally:
        for record in started if not keep else []:
            manager.stop(record.serial)
            console().print(f"stopped virtual {record.serial} (keep it with --keep)")
