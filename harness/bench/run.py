"""Orchestrate a bench run: resolve -> stage -> measure -> compare -> store, per device.

One worker thread per device; cells run sequentially on a device and in parallel across
devices. Every cell is committed to the store when it finishes (its own connection per
worker), so Ctrl-C or a lost device never loses a finished cell; ``resume`` runs only the
cells the store does not have as ``ok`` (missing and failed ones).

Faults (docs/reliability.md): transfers and read-only commands are retried with backoff
(``Device.retrying``); a benchmark_model crash, hang or bad output is recorded as the cell's
failure, never retried; a cell whose connection was lost is measured again (at most
``CELL_ATTEMPTS`` times) once the phone is back, waiting up to ``reconnect_wait`` seconds
with backoff; a phone that does not come back fails its remaining cells ("device lost").
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness import assets
from harness.bench import checks, phone
from harness.bench.finish import _Finisher
from harness.bench.measure import CellFailed, Runner, Settings, accuracy_pass, latency_pass
from harness.bench.plan import (
    Target,
    eval_images,
    eval_source,
    full_resolution,
    input_key,
    resolve_delegates,
    resolve_targets,
)
from harness.bench.stage import Staged, local_inputs, stage
from harness.convert.iospec import IoOptions
from harness.devices import adb
from harness.devices.device import Device
from harness.devices.info import DeviceInfo
from harness.devices.retry import backoff_within
from harness.devices.state import warnings as warn_state
from harness.errors import (
    AdbUnavailable,
    DeviceNotFound,
    DeviceUnavailable,
    HarnessError,
    UsageError,
)
from harness.runner import Delegate
from harness.store import CellKey, CellRecord, Store


@dataclass(frozen=True)
class BenchOptions:
    model: str
    devices: tuple[str, ...] = ()
    adb: tuple[str, ...] = ()
    variants: str | None = None
    delegates: str | None = None
    threads: int | None = None
    runs: int = 20
    warmup: int = 2
    repeats: int = 2
    eval_set: str = "synthetic"
    images: int = 8
    store: str = "results/harness.db"
    cooldown: float | None = None  # None: 0 s on virtual phones, 3 s on real ones
    timeout: float = 120.0
    wait_lock: float = 0.0
    reconnect_wait: float = 60.0  # how long a lost phone may take to come back (not the plan)
    runner: str = "shell"  # latency pass: shell (benchmark_model binary) or apk (the app)
    require_cool: float | None = None  # °C: before each cell, wait until the hottest zone is below
    cool_wait: float = 600.0  # at most this many seconds per cell, then the cell fails
    io: dict = field(default_factory=dict)  # IoOptions.to_dict(): normalization, output, prior

    def io_options(self) -> IoOptions:
        return IoOptions.from_dict(self.io)

    def plan_config(self) -> dict:
        keys = (
            "io",
            "model",
            "variants",
            "delegates",
            "threads",
            "runs",
            "warmup",
            "repeats",
            "eval_set",
            "images",
            "cooldown",
            "timeout",
            "runner",
            "require_cool",
            "cool_wait",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class Outcome:
    run_id: str
    status: str
    cells: list[CellRecord] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_skipped: int = 0
    device_seconds: float = 0.0  # wall time of benchmark_model commands on the devices (summed)
    wall_seconds: float = 0.0
    skipped_cells: int = 0  # already in the store (resume)
    warnings: list[str] = field(default_factory=list)  # I/O spec warnings (e.g. normalization)

    @property
    def failed(self) -> list[CellRecord]:
        return [c for c in self.cells if not c.ok]


@dataclass
class _Shared:
    store_path: str
    run_id: str
    targets: list[Target]
    references: dict[str, tuple[np.ndarray, np.ndarray]]  # sha -> (fg, mask)
    float_fg: np.ndarray | None
    gt: np.ndarray | None
    eval_fingerprint: str
    inputs_by_key: dict[str, list[Path]]
    settings: Settings
    cooldown: float | None
    stop: threading.Event
    on_cell: Callable[[CellRecord], None]
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcome: Outcome | None = None
    finishers: list = field(default_factory=list)  # one _Finisher per device
    require_cool: float | None = None
    cool_wait: float = 600.0
    submitted: set = field(default_factory=set)  # (serial, variant sha256, delegate) handed on
    full_res: object | None = None  # harness.evalset.EvalFolder for --full-res-iou


def _measure_cell(
    device: Device,
    staged: Staged,
    target: Target,
    delegate: Delegate,
    cell_id: str,
    s: Settings,
) -> tuple[dict, dict, str, np.ndarray, float]:
    """The device part of a cell: (latency, delegation, log, raw outputs, device seconds)."""
    latency, delegation, log = latency_pass(device, staged, target, delegate, s)
    raw, acc_log, acc_s = accuracy_pass(device, staged, target, delegate, s, cell_id)
    device_s = latency["bm_s"] + acc_s  # time inside benchmark_model commands on the device
    latency["accuracy_bm_s"] = acc_s
    return latency, delegation, log + "\n" + acc_log, raw, device_s


# Losing the connection mid-cell is not a finding about the model: the cell is measured again
# once the phone is back, at most this many times in all.
CELL_ATTEMPTS = 3
_LOST = (DeviceUnavailable, DeviceNotFound, AdbUnavailable)


def _await_device(device: Device, budget: float, stop: threading.Event) -> None:
    """Wait (backoff, reconnecting) until the phone answers a shell again; DeviceUnavailable
    when it has not come back within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    last = "no answer"
    for delay in [0.0, *backoff_within(budget)]:
        if stop.wait(delay):
            break
        remaining = deadline - time.monotonic()
        try:
            device.reconnect(timeout=max(1.0, min(10.0, remaining)))
            if device.shell("true", timeout=max(1.0, min(10.0, remaining))).ok:
                return
        except HarnessError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            break
    raise DeviceUnavailable(f"{device.serial} did not come back within {budget:g}s: {last}")


def _stage(device: Device, info: DeviceInfo, shared: _Shared, budget: float) -> Staged:
    """Stage, and once more after waiting for the phone if it was lost while staging."""
    args = (shared.targets, shared.eval_fingerprint, shared.inputs_by_key, shared.settings.runner)
    try:
        return stage(device, info, *args)
    except _LOST:
        _await_device(device, budget, shared.stop)
        return stage(device, info, *args)


def _cell(
    shared: _Shared,
    serial: str,
    target: Target,
    delegate: Delegate,
    *,
    started: float,
    status: str = "ok",
    reason: str = "",
    latency: dict | None = None,
    accuracy: dict | None = None,
    delegation: dict | None = None,
    thermal: dict | None = None,
    log: str = "",
) -> CellRecord:
    """The store record of one cell, finished now."""
    return CellRecord(
        run_id=shared.run_id,
        serial=serial,
        variant_sha256=target.sha256,
        variant_id=target.variant_id,
        delegate=delegate.value,
        status=status,
        reason=reason,
        started=started,
        finished=time.time(),
        latency=latency or {},
        accuracy=accuracy or {},
        delegation=delegation or {},
        thermal=thermal or {},
        log=log,
    )


def _failed_cell(
    shared: _Shared, serial: str, target: Target, delegate: Delegate, reason: str
) -> CellRecord:
    return _cell(
        shared, serial, target, delegate, started=time.time(), status="failed", reason=reason
    )


def _worker(
    entry: adb.DeviceEntry,
    device: Device,
    info: DeviceInfo,
    cells: list[tuple[Target, Delegate]],
    shared: _Shared,
    reconnect_wait: float,
) -> None:
    finisher = _Finisher(shared, entry.serial)
    try:
        try:
            staged = _stage(device, info, shared, reconnect_wait)
            settings = Settings(
                **{**asdict(shared.settings), "affinity": phone.affinity(device, info)}
            )
        except HarnessError as exc:  # staging failed: every cell of this device fails with it
            for target, delegate in cells:
                reason = f"staging failed: {exc}"
                finisher.submit(
                    _failed_cell(shared, entry.serial, target, delegate, reason), target
                )
            return
        with shared.lock:
            shared.outcome.bytes_sent += staged.bytes_sent
            shared.outcome.bytes_skipped += staged.bytes_skipped
        cooldown = (
            shared.cooldown if shared.cooldown is not None else (0.0 if info.virtual else 3.0)
        )
        lost: str | None = None
        # With no cool-down, the snapshot taken after a cell is also the one before the next:
        # nothing runs between them (saves a device round trip per cell).
        last_after: dict | None = None
        for n, (target, delegate) in enumerate(cells):
            if shared.stop.is_set():
                return
            if lost:
                reason = f"device lost: {lost}"
                finisher.submit(
                    _failed_cell(shared, entry.serial, target, delegate, reason), target
                )
                continue
            if n and cooldown:
                time.sleep(cooldown)
            started = time.time()
            cell_id = f"{shared.run_id}-{target.sha256[:8]}-{delegate.value}"
            record = dict(
                latency={}, accuracy={}, delegation={}, thermal={}, log="", status="ok", reason=""
            )
            raw = None
            retries0 = device.retries
            for attempt in range(1, CELL_ATTEMPTS + 1):
                try:
                    if shared.require_cool is not None:
                        before, waited = phone.wait_cool(
                            device, shared.require_cool, shared.cool_wait, shared.stop
                        )
                        before["cool_wait_s"] = round(waited, 1)
                    else:
                        before = (
                            last_after if last_after and not cooldown else phone.snapshot(device)
                        )
                    last_after = None
                    lat, dele, log, raw, dev_s = _measure_cell(
                        device, staged, target, delegate, cell_id, settings
                    )
                    after = last_after = phone.snapshot(device)
                    lat.update(attempts=attempt, retries=device.retries - retries0)
                    record.update(
                        latency=lat,
                        delegation=dele,
                        log=log,
                        thermal={"before": before, "after": after},
                    )
                    with shared.lock:
                        shared.outcome.device_seconds += dev_s
                    break
                except CellFailed as exc:  # a finding about the cell: recorded, not retried
                    record.update(status="failed", reason=exc.reason, log=exc.log)
                    break
                except phone.NotCool as exc:
                    record.update(status="failed", reason=str(exc))
                    break
                except _LOST as exc:  # the connection went: measure again once it is back
                    if attempt == CELL_ATTEMPTS or shared.stop.is_set():
                        lost = str(exc)
                        record.update(status="failed", reason=f"device lost: {exc}")
                        break
                    try:
                        _await_device(device, reconnect_wait, shared.stop)
                        staged = stage(
                            device,
                            info,
                            shared.targets,
                            shared.eval_fingerprint,
                            shared.inputs_by_key,
                            shared.settings.runner,
                        )
                    except HarnessError as again:
                        lost = str(again)
                        record.update(status="failed", reason=f"device lost: {again}")
                        break
                except HarnessError as exc:
                    record.update(status="failed", reason=str(exc))
                    break
            if shared.stop.is_set() and record["status"] != "ok":
                return  # interrupted mid-cell: not a finding, resume measures it
            cell = _cell(shared, entry.serial, target, delegate, started=started, **record)
            finisher.submit(cell, target, raw if cell.ok else None)
    finally:
        finisher.close()


def _guarded_worker(
    entry: adb.DeviceEntry,
    device: Device,
    info: DeviceInfo,
    cells: list[tuple[Target, Delegate]],
    shared: _Shared,
    reconnect_wait: float,
) -> None:
    """:func:`_worker`; a bug in it must not drop cells silently: the cells it had not
    handed on are recorded as failed, with the error (the run then exits 10, not 0)."""
    try:
        _worker(entry, device, info, cells, shared, reconnect_wait)
    except Exception as exc:
        if shared.stop.is_set():
            return
        reason = f"internal error: {type(exc).__name__}: {exc}"
        finisher = _Finisher(shared, entry.serial)
        try:
            for target, delegate in cells:
                if (entry.serial, target.sha256, delegate.value) not in shared.submitted:
                    cell = _failed_cell(shared, entry.serial, target, delegate, reason)
                    finisher.submit(cell, target)
        finally:
            finisher.close()


def _sigterm_interrupts():
    """SIGTERM (a lab runner stopping us) takes the same path as Ctrl-C: finished cells are
    kept, the run is marked interrupted. Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def run_bench(
    opts: BenchOptions,
    resume: str | None = None,
    on_start: Callable[[str, list[tuple[str, str, str]]], None] | None = None,
    on_cell: Callable[[CellRecord], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Outcome:
    from harness.convert.reference import EvalSet, reference_outputs

    wall0 = time.monotonic()
    if resume:
        if not Path(opts.store).is_file():
            raise UsageError(f"{opts.store}: no such results store")
        with Store(opts.store) as prior:
            run_id = prior.resolve_run(resume)
            prior_run = prior.run(run_id)
            config = prior_run["config"]
            done = prior.done_keys(run_id, only_ok=True)  # failed cells are measured again
        defaults = asdict(BenchOptions(model=""))
        plan = checks.resume_plan(run_id, prior_run, asdict(opts), defaults)
        opts = BenchOptions(**{**asdict(opts), **plan})
    model_name, targets = resolve_targets(opts.model, opts.variants, opts.io_options())
    warnings = list(dict.fromkeys(f"{t.variant_id}: {w}" for t in targets for w in t.warnings))
    delegates = resolve_delegates(opts.delegates)
    runner = Runner.parse(opts.runner).value
    checks.bench_options(opts)
    if opts.eval_set != "synthetic" and not Path(opts.eval_set).is_dir():
        raise UsageError(f"--eval-set {opts.eval_set}: not a folder (or 'synthetic')")
    servers = adb.resolve_servers(list(opts.adb) or None)
    entries = adb.revive_offline(
        adb.list_devices(servers),
        list(opts.devices),
        servers,
        timeout=min(15.0, opts.reconnect_wait),
    )
    chosen = adb.select_devices(entries, list(opts.devices))
    devices = [(e, Device(e)) for e in chosen]
    locks: list = []
    store: Store | None = None
    try:
        for _, d in devices:
            locks.append(d.lock(wait=opts.wait_lock).acquire())  # DeviceBusy: refuse
        infos = [d.retrying(d.probe, "probe") for _, d in devices]
        for info in infos:  # AssetError (exit 9), one line, before anything is stored
            assets.binary_for_abi(info.abi)
            if runner == Runner.APK.value:
                assets.apk_for_abi(info.abi)
        states = [phone.read_state(d) for _, d in devices]  # recorded per run, warned about
        for (entry, _), state in zip(devices, states, strict=True):
            for line in warn_state(state):
                (on_warning or (lambda text: None))(f"{entry.serial}: {line}")
        first = targets[0]
        name, images, masks = eval_images(opts.eval_set, opts.images, first, opts.io_options())
        eval_set = EvalSet(name, images, masks)
        cache_dir = Path(opts.model) / "reference" if Path(opts.model).is_dir() else None
        references, float_fg = {}, None
        for t in targets:
            if (t.input.height, t.input.width, t.input.channels) != images.shape[1:]:
                raise UsageError(f"{t.variant_id}: input {t.input.shape} differs from the others")
            ref = reference_outputs(t.path, eval_set, t.input, t.output, cache_dir=cache_dir)
            references[t.sha256] = (ref.fg_prob, ref.mask)
            if t.variant_id == "logits-fp32":
                float_fg = ref.fg_prob
        inputs_by_key = {}
        for t in targets:
            key = input_key(eval_set.fingerprint, t.input)
            inputs_by_key.setdefault(key, local_inputs(key, images, t))
        # Opened only now: bad input (model, eval set, device) leaves no store or run behind.
        store = Store(opts.store)
        if resume:
            store.claim_run(run_id)  # DeviceBusy if another process resumed it meanwhile
        else:
            config = {
                "options": opts.plan_config(),
                "model": model_name,
                "runs": opts.runs,
                "warmup": opts.warmup,
                "repeats": opts.repeats,
                "threads": opts.threads,
                "devices": [e.serial for e, _ in devices],
                "variants": [t.config_entry() for t in targets],
                "warnings": warnings,
                "delegates": [d.value for d in delegates],
                "eval_set": {
                    **eval_set.describe(),
                    **eval_source(opts.eval_set, opts.io_options()),
                },
            }
            run_id = store.create_run(config)
            done = set()
        store.add_evalset(eval_set.fingerprint, eval_set.name, images, masks)
        for (entry, _), info, state in zip(devices, infos, states, strict=True):
            extra = {"state": state.to_json(), "state_warnings": warn_state(state)}
            store.add_device(
                run_id, entry.serial, info.model, info.virtual, {**info.to_json(), **extra}
            )
        for t in targets:
            store.add_variant(t.sha256, t.variant_id, model_name, t.spec)
        outcome = Outcome(run_id, "running", warnings=warnings)
        plan_rows = []
        per_device = []
        for (entry, device), info in zip(devices, infos, strict=True):
            cells = [
                (t, d)
                for t in targets
                for d in delegates
                if CellKey(entry.serial, t.sha256, d.value) not in done
            ]
            outcome.skipped_cells += len(targets) * len(delegates) - len(cells)
            plan_rows += [(entry.serial, t.variant_id, d.value) for t, d in cells]
            per_device.append((entry, device, info, cells))
        if on_start:
            on_start(run_id, plan_rows)
        shared = _Shared(
            opts.store,
            run_id,
            targets,
            references,
            float_fg,
            masks,
            eval_set.fingerprint,
            inputs_by_key,
            Settings(
                opts.runs, opts.warmup, opts.repeats, opts.threads, opts.timeout, runner=runner
            ),
            opts.cooldown,
            threading.Event(),
            on_cell or (lambda cell: None),
        )
        shared.outcome = outcome
        shared.require_cool, shared.cool_wait = opts.require_cool, opts.cool_wait
        shared.full_res = full_resolution(opts.eval_set, opts.images, first, opts.io_options())
        threads = [
            threading.Thread(
                target=_guarded_worker,
                args=(e, d, i, c, shared, opts.reconnect_wait),
                daemon=True,
                name=f"bench-{e.serial}",
            )
            for e, d, i, c in per_device
            if c
        ]
        for th in threads:
            th.start()
        previous = _sigterm_interrupts()
        try:
            while any(th.is_alive() for th in threads):
                for th in threads:
                    th.join(timeout=0.2)
        except KeyboardInterrupt:
            shared.stop.set()
            for finisher in list(shared.finishers):  # measured cells are stored, not dropped
                finisher.drain(timeout=30)
            store.finish_run(run_id, "interrupted")
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        all_cells = store.cells(run_id)
        planned = {
            CellKey(e.serial, t.sha256, d.value)
            for e, _ in devices
            for t in targets
            for d in delegates
        }
        whole = all(c.ok for c in all_cells) and planned <= {c.key for c in all_cells}
        outcome.status = "complete" if whole else "partial"
        store.finish_run(run_id, outcome.status)
        outcome.wall_seconds = time.monotonic() - wall0
        return outcome
    finally:
        for lock in locks:
            lock.release()
        if store is not None:
            store.close()
