"""Orchestrate a bench run: resolve -> stage -> measure -> compare -> store, per device.

One worker thread per device; cells run sequentially on a device and in parallel across
devices. Every cell is committed to the store when it finishes (its own connection per
worker), so Ctrl-C or a lost device never loses a finished cell; ``resume`` runs only the
cells the store does not have as measured (missing and failed ones).

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
from typing import TYPE_CHECKING

import numpy as np

from harness import assets
from harness.bench import checks, phone
from harness.bench.measure import Runner, Settings
from harness.bench.plan import (
    Target,
    eval_images,
    eval_source,
    full_resolution,
    input_key,
    resolve_delegates,
    resolve_targets,
)
from harness.bench.stage import local_inputs
from harness.bench.worker import DeviceWorker, Shared
from harness.cell import Cell, CellKey, contains
from harness.convert.iospec import IoOptions
from harness.devices import adb
from harness.devices.device import Device
from harness.devices.state import warnings as warn_state
from harness.errors import UsageError
from harness.runner import Delegate
from harness.store import Store

if TYPE_CHECKING:
    from harness.convert.reference import EvalSet


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
    target_ci: float | None = None  # % half-width of the 95% CI of the mean (harness.bench.stats)
    max_time: float = 300.0  # seconds of benchmark_model per cell's latency pass, with target_ci
    profile_ops: bool = False  # one more invocation per cell with op profiling (profile_ops.py)
    gpu_init: bool = False  # GPU cells: init cold and warm with the kernel cache (gpu_init.py)
    sustain: float | None = None  # seconds of back-to-back inference per cell (sustain.py)

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
            "target_ci",
            "max_time",
            "profile_ops",
            "gpu_init",
            "sustain",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class Outcome:
    run_id: str
    status: str
    cells: list[Cell] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_skipped: int = 0
    device_seconds: float = 0.0  # wall time of benchmark_model commands on the devices (summed)
    wall_seconds: float = 0.0
    skipped_cells: int = 0  # already in the store (resume)
    warnings: list[str] = field(default_factory=list)  # I/O spec warnings (e.g. normalization)

    @property
    def failed(self) -> list[Cell]:
        return [c for c in self.cells if not c.measured]


def _sigterm_interrupts():
    """SIGTERM (a lab runner stopping us) takes the same path as Ctrl-C: finished cells are
    kept, the run is marked interrupted. Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


# -- the stages of a run, in order -------------------------------------------------------------


@dataclass(frozen=True)
class _Resumed:
    """The run ``--resume`` continues: its id, its stored config and the cells it has (ok)."""

    run_id: str
    config: dict
    done: set


def _resume(opts: BenchOptions, resume: str) -> tuple[BenchOptions, _Resumed]:
    """The options of the run being resumed (its plan is pinned: checks.resume_plan)."""
    if not Path(opts.store).is_file():
        raise UsageError(f"{opts.store}: no such results store")
    with Store(opts.store) as prior:
        run_id = prior.resolve_run(resume)
        prior_run = prior.run(run_id)
        done = prior.done_keys(run_id, only_measured=True)  # failed: measured again
    defaults = asdict(BenchOptions(model=""))
    plan = checks.resume_plan(run_id, prior_run, asdict(opts), defaults)
    return BenchOptions(**{**asdict(opts), **plan}), _Resumed(run_id, prior_run["config"], done)


@dataclass(frozen=True)
class _Plan:
    model_name: str
    targets: list[Target]
    delegates: list[Delegate]
    runner: str
    warnings: list[str]  # I/O spec warnings, once each


def _plan(opts: BenchOptions) -> _Plan:
    """Variants, delegates and runner from the options; bad options fail here (exit 2)."""
    model_name, targets = resolve_targets(opts.model, opts.variants, opts.io_options())
    warnings = list(dict.fromkeys(f"{t.variant_id}: {w}" for t in targets for w in t.warnings))
    delegates = resolve_delegates(opts.delegates)
    runner = Runner.parse(opts.runner).value
    checks.bench_options(opts)
    if opts.eval_set != "synthetic" and not Path(opts.eval_set).is_dir():
        raise UsageError(f"--eval-set {opts.eval_set}: not a folder (or 'synthetic')")
    return _Plan(model_name, targets, delegates, runner, warnings)


def _choose_devices(opts: BenchOptions) -> list[tuple[adb.DeviceEntry, Device]]:
    servers = adb.resolve_servers(list(opts.adb) or None)
    entries = adb.revive_offline(
        adb.list_devices(servers),
        list(opts.devices),
        servers,
        timeout=min(15.0, opts.reconnect_wait),
    )
    return [(e, Device(e)) for e in adb.select_devices(entries, list(opts.devices))]


def _probe(devices, runner: str, on_warning: Callable[[str], None] | None):
    """(DeviceInfo, PhoneState) per device; a missing benchmark binary fails here (exit 9),
    one line, before anything is stored."""
    infos = [d.retrying(d.probe, "probe") for _, d in devices]
    for info in infos:
        assets.binary_for_abi(info.abi)
        if runner == Runner.APK.value:
            assets.apk_for_abi(info.abi)
    states = [phone.read_state(d) for _, d in devices]  # recorded per run, warned about
    for (entry, _), state in zip(devices, states, strict=True):
        for line in warn_state(state):
            (on_warning or (lambda text: None))(f"{entry.serial}: {line}")
    return infos, states


@dataclass(frozen=True)
class _Eval:
    """The eval set, the desktop reference of every variant on it, and the inputs to push."""

    eval_set: EvalSet
    images: np.ndarray
    masks: np.ndarray | None
    references: dict[str, tuple[np.ndarray, np.ndarray]]  # sha -> (fg, mask)
    float_fg: np.ndarray | None  # logits-fp32's foreground, for vs_float
    inputs_by_key: dict[str, list[Path]]


def _references(opts: BenchOptions, targets: list[Target]) -> _Eval:
    from harness.convert.reference import EvalSet, reference_outputs

    name, images, masks = eval_images(opts.eval_set, opts.images, targets[0], opts.io_options())
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
    return _Eval(eval_set, images, masks, references, float_fg, inputs_by_key)


def _open_run(
    store: Store, opts: BenchOptions, plan: _Plan, devices, ev: _Eval, resumed: _Resumed | None
) -> tuple[str, set]:
    """Claim the resumed run, or create the run with its config: (run id, cells done)."""
    if resumed:
        store.claim_run(resumed.run_id)  # DeviceBusy if another process resumed it meanwhile
        return resumed.run_id, resumed.done
    config = {
        "options": opts.plan_config(),
        "model": plan.model_name,
        "runs": opts.runs,
        "warmup": opts.warmup,
        "repeats": opts.repeats,
        "threads": opts.threads,
        "devices": [e.serial for e, _ in devices],
        "device_ids": [e.id.to_json() for e, _ in devices],
        "variants": [t.config_entry() for t in plan.targets],
        "warnings": plan.warnings,
        "delegates": [d.value for d in plan.delegates],
        "eval_set": {
            **ev.eval_set.describe(),
            **eval_source(opts.eval_set, opts.io_options()),
        },
    }
    return store.create_run(config), set()


def _store_inputs(store: Store, run_id: str, plan: _Plan, devices, infos, states, ev: _Eval):
    """The eval set, each device (with its state before the run) and each variant."""
    eval_set = ev.eval_set
    store.add_evalset(eval_set.fingerprint, eval_set.name, ev.images, ev.masks)
    for (entry, _), info, state in zip(devices, infos, states, strict=True):
        extra = {"state": state.to_json(), "state_warnings": warn_state(state)}
        store.add_device(run_id, entry.id, info.model, info.virtual, {**info.to_json(), **extra})
    for t in plan.targets:
        store.add_variant(t.sha256, t.variant_id, plan.model_name, t.spec)


def _cells_per_device(devices, infos, plan: _Plan, done: set, outcome: Outcome):
    """Each device's cells still to measure (all but the ``done`` ones): (plan rows, work)."""
    plan_rows, per_device = [], []
    targets, delegates = plan.targets, plan.delegates
    for (entry, device), info in zip(devices, infos, strict=True):
        cells = [
            (t, d)
            for t in targets
            for d in delegates
            if not contains(done, CellKey(entry.id, t.sha256, d.value))
        ]
        outcome.skipped_cells += len(targets) * len(delegates) - len(cells)
        plan_rows += [(entry.serial, t.variant_id, d.value) for t, d in cells]
        per_device.append((entry, device, info, cells))
    return plan_rows, per_device


def _measure(shared: Shared, per_device, store: Store, reconnect_wait: float) -> None:
    """One worker thread per device with cells; Ctrl-C or SIGTERM stops them, stores what
    was measured and marks the run interrupted."""
    workers = [DeviceWorker(e, d, i, c, shared, reconnect_wait) for e, d, i, c in per_device if c]
    threads = [
        threading.Thread(target=w.run, daemon=True, name=f"bench-{w.serial}") for w in workers
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
        store.finish_run(shared.run_id, "interrupted")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _finish(store: Store, run_id: str, devices, plan: _Plan, outcome: Outcome) -> None:
    """complete when every planned cell is stored measured, else partial."""
    all_cells = store.cells(run_id)
    planned = {
        CellKey(e.id, t.sha256, d.value)
        for e, _ in devices
        for t in plan.targets
        for d in plan.delegates
    }
    stored = {c.key for c in all_cells}
    whole = all(c.measured for c in all_cells) and all(contains(stored, k) for k in planned)
    outcome.status = "complete" if whole else "partial"
    store.finish_run(run_id, outcome.status)


def run_bench(
    opts: BenchOptions,
    resume: str | None = None,
    on_start: Callable[[str, list[tuple[str, str, str]]], None] | None = None,
    on_cell: Callable[[Cell], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Outcome:
    """Plan, take the devices, compute the references, open the run, measure, finish."""
    wall0 = time.monotonic()
    resumed = None
    if resume:
        opts, resumed = _resume(opts, resume)
    plan = _plan(opts)
    devices = _choose_devices(opts)
    locks: list = []
    store: Store | None = None
    try:
        for _, d in devices:
            locks.append(d.lock(wait=opts.wait_lock).acquire())  # DeviceBusy: refuse
        infos, states = _probe(devices, plan.runner, on_warning)
        ev = _references(opts, plan.targets)
        # Opened only now: bad input (model, eval set, device) leaves no store or run behind.
        store = Store(opts.store)
        run_id, done = _open_run(store, opts, plan, devices, ev, resumed)
        _store_inputs(store, run_id, plan, devices, infos, states, ev)
        outcome = Outcome(run_id, "running", warnings=plan.warnings)
        plan_rows, per_device = _cells_per_device(devices, infos, plan, done, outcome)
        if on_start:
            on_start(run_id, plan_rows)
        settings = Settings(
            opts.runs,
            opts.warmup,
            opts.repeats,
            opts.threads,
            opts.timeout,
            runner=plan.runner,
            target_ci=opts.target_ci,
            max_time=opts.max_time,
            profile_ops=opts.profile_ops,
            gpu_init=opts.gpu_init,
            sustain=opts.sustain,
        )
        shared = Shared(
            opts.store,
            run_id,
            plan.targets,
            ev.references,
            ev.float_fg,
            ev.masks,
            ev.eval_set.fingerprint,
            ev.inputs_by_key,
            settings,
            opts.cooldown,
            threading.Event(),
            on_cell or (lambda cell: None),
        )
        shared.outcome = outcome
        shared.require_cool, shared.cool_wait = opts.require_cool, opts.cool_wait
        io = opts.io_options()
        shared.full_res = full_resolution(opts.eval_set, opts.images, plan.targets[0], io)
        _measure(shared, per_device, store, opts.reconnect_wait)
        _finish(store, run_id, devices, plan, outcome)
        outcome.wall_seconds = time.monotonic() - wall0
        return outcome
    finally:
        for lock in locks:
            lock.release()
        if store is not None:
            store.close()
