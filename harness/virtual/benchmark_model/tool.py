"""The virtual phone's ``benchmark_model``: the official tool's flags and log, on host LiteRT.

Run as ``python -m harness.virtual.benchmark_model --graph=PATH [flags]`` (the virtual
phone's ``/data/local/tmp/benchmark_model`` is a launcher doing exactly that). Every timing is a
real measurement of ``Interpreter.invoke()`` on this machine; nothing is invented or scaled. GPU
and NNAPI delegates are emulated: the verdict follows the model's ops
(:mod:`harness.virtual.benchmark_model.gpu_emulation`), the numerics of the outputs written by
``--output_filepath`` are recomputed after the runs, and the profile's
``.harness/virtual.json`` decides which backends exist. See docs/virtual-phone.md.

Imports only numpy and ai-edge-litert (startup matters: one process per benchmark cell).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from harness.stdio import captured_fd2
from harness.virtual.benchmark_model import flags as bm_flags
from harness.virtual.benchmark_model.delegates import DelegateStack
from harness.virtual.benchmark_model.errors import Failed, Fatal
from harness.virtual.benchmark_model.gpu_emulation import Emulation
from harness.virtual.benchmark_model.stats import (
    Out,
    PeakMemory,
    Stat,
    fmt_g,
    maxrss_kb,
    now_us,
    statm,
)
from harness.virtual.benchmark_model.tflite_graph import Graph, GraphError, read_graph

_RANGES = {"f": (-0.5, 0.5), "u1": (0, 254), "i1": (-127, 127), "b": (0, 1)}


def _virtual_config() -> dict:
    root = os.environ.get("HARNESS_VIRTUAL_ROOT")
    if root:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((Path(root) / ".harness" / "virtual.json").read_text())
            if isinstance(data, dict):
                return data
    return {}


@contextlib.contextmanager
def _captured_stderr(sink: list[str]):
    """Capture what the native runtime writes to fd 2, to forward it selectively."""
    lines: list[bytes] = []
    try:
        with captured_fd2(lines):
            yield
    finally:
        sink.extend(ln.decode("utf-8", "replace").rstrip("\r\n") for ln in lines)


def _split_value_file(item: str) -> tuple[str, str]:
    """``name:path`` with ``::`` escaping a ':' (SplitInputLayerNameAndValueFile)."""
    delim, i = -1, 0
    while i < len(item) - 1:
        if item[i] == ":":
            if item[i + 1] == ":":
                i += 1
            elif delim == -1:
                delim = i
            else:
                raise Failed(f"{item} contains more than one delimiter.")
        i += 1
    if delim == -1:
        raise Failed(f"{item} doesn't contain any delimiter.")
    return item[:delim].replace("::", ":"), item[delim + 1 :].replace("::", ":")


class Benchmark:
    def __init__(self, params: bm_flags.Params, out: Out) -> None:
        self.p, self.out = params, out
        self.config = _virtual_config()
        self.stack = DelegateStack(params, self.config, out)
        self.layers: list[dict] = []  # InputLayerInfo: name, shape, file
        self.graph: Graph | None = None
        self.model_data = b""
        self.interp: Interpreter | None = None
        self.emulation: Emulation | None = None
        self.accel = ""  # "gpu" | "nnapi" | "" (CPU)
        self.thermal = None  # harness.virtual.thermal.Thermal when emulated heating is on

    # -- validation and parameters --------------------------------------------------------------
    def validate(self) -> None:
        p = self.p
        if not p["graph"]:
            raise Failed("Please specify the name of your TF Lite input file with --graph")
        names = p["input_layer"].split(",") if p["input_layer"] else []
        shapes = p["input_layer_shape"].split(":") if p["input_layer_shape"] else []
        if len(names) != len(shapes):
            raise Failed(
                f"The number of items in --input_layer_shape ({p['input_layer_shape']}, with "
                f"{len(shapes)} items) must match the number of items in --input_layer "
                f"({p['input_layer']}, with {len(names)} items). For example "
                "--input_layer=input1,input2 --input_layer_shape=1,224,224,4:1,20"
            )
        for name, text in zip(names, shapes, strict=True):
            try:
                shape = [int(d) for d in text.split(",")]
            except ValueError:
                raise Fatal(f"Incorrect size string specified: {text}") from None
            if -1 in shape:
                raise Failed(
                    "Any unknown sizes in the shapes (-1's) must be replaced with the"
                    " size you want to benchmark with."
                )
            self.layers.append({"name": name, "shape": shape, "file": ""})
        files = p["input_layer_value_files"]
        for item in files.split(",") if files else []:
            try:
                name, path = _split_value_file(item)
            except Failed as exc:
                self.out.error(str(exc))
                raise Failed(f"Wrong input value file item specified: {item}") from None
            match = [layer for layer in self.layers if layer["name"] == name]
            if not match:
                raise Fatal(
                    f"Cannot find the corresponding input_layer name({name}) in "
                    f"--input_layer as {p['input_layer']}"
                )
            match[0]["file"] = path

    def log_params(self) -> None:
        verbose = self.p["verbose"]
        self.out.info(f"Log parameter values verbosely: [{int(verbose)}]")
        for flag in bm_flags.FLAGS:
            if flag.label and (verbose or flag.always_log or flag.name in self.p.explicit):
                self.out.info(f"{flag.label}: [{bm_flags.fmt(self.p[flag.name])}]")
                if flag.name == "num_threads":
                    self.out.info(f"#threads used for CPU inference: [{self.p['num_threads']}]")
                if flag.name == "use_nnapi" and self.p["use_nnapi"] and self.stack.nnapi_exists():
                    accels = self.config.get("nnapi_accelerators") or ["nnapi-reference"]
                    self.out.info(f"NNAPI accelerators available: [{','.join(accels)}]")

    # -- init -----------------------------------------------------------------------------------
    def init(self) -> None:
        path = self.p["graph"]
        try:
            data = Path(path).read_bytes()
        except OSError:
            self.out.runtime(f"Could not open '{path}'.", "ERROR")
            raise Failed(f"Failed to load model {path}") from None
        try:
            self.graph = read_graph(data)
            self.model_data = data
        except GraphError:
            self.out.runtime("The model is not a valid Flatbuffer buffer", "ERROR")
            raise Failed(f"Failed to load model {path}") from None
        self.out.info(f"Loaded model {path}")
        self.out.runtime("Initialized TensorFlow Lite runtime.")
        self.accel, emulation, plan = self.stack.choose(self.graph)
        captured: list[str] = []
        try:
            self.interp = self._interpreter(path, emulation, captured)
        except ValueError as exc:
            self._forward(captured, str(exc))
            raise Failed("Failed to initialize the interpreter") from None
        self._check_and_resize_inputs()
        if self.accel == "gpu":
            self.stack.apply_gpu(plan, self.model_data)
        elif self.accel == "nnapi":
            self.stack.apply_nnapi(self.graph)
        try:
            with _captured_stderr(captured):
                self.interp.allocate_tensors()
        except RuntimeError as exc:
            self._forward(captured, str(exc))
            raise Failed("Failed to allocate tensors!") from None
        self._forward(captured)
        self.emulation = emulation

    def _interpreter(self, path: str, emulation: Emulation | None, captured: list[str]):
        threads = self.p["num_threads"]
        resolver = OpResolverType.AUTO
        if "use_xnnpack" in self.p.explicit and not self.p["use_xnnpack"]:
            resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        # Intermediates are only read to emulate the outputs written by --output_filepath; timed
        # runs keep LiteRT's default delegate (preserving every tensor switches XNNPACK off).
        preserve = (
            emulation is not None
            and bool(self.p["output_filepath"])
            and emulation.needs_intermediates(self.graph)
        )
        with warnings.catch_warnings(), _captured_stderr(captured):
            warnings.simplefilter("ignore")
            return Interpreter(
                model_path=path,
                num_threads=threads if threads > 0 else None,
                experimental_op_resolver_type=resolver,
                experimental_preserve_all_tensors=preserve,
            )

    def _forward(self, captured: list[str], error: str = "") -> None:
        """Pass the runtime's own stderr lines on, then an exception's text as ERROR lines."""
        for line in captured:
            if self.accel and "XNNPACK delegate for CPU" in line:
                continue  # an explicitly applied delegate disables the lazy default XNNPACK
            print(line, file=sys.stderr, flush=True)
        captured.clear()
        for line in error.strip().splitlines():
            self.out.runtime(line, "ERROR")

    def _check_and_resize_inputs(self) -> None:
        details = self.interp.get_input_details()
        if not self.layers:
            return
        if len(self.layers) != len(details):
            raise Fatal(
                f"Inputs mismatch: Model inputs #:{len(self.layers)} expected: {len(details)}"
            )
        for layer, detail in zip(self.layers, details, strict=True):
            if layer["name"] != detail["name"]:
                self.out.warn(
                    f"Tensor # {detail['index']} is named {detail['name']} but flags "
                    f"call it {layer['name']}"
                )
            if len(layer["shape"]) != len(detail["shape"]):
                raise Failed(
                    f"Input tensor #{detail['index']} should have "
                    f"{len(detail['shape'])} dimensions!"
                )
        for layer, detail in zip(self.layers, details, strict=True):
            try:
                self.interp.resize_tensor_input(detail["index"], layer["shape"])
            except (RuntimeError, ValueError) as exc:
                self._forward([], str(exc))
                raise Failed(f"Failed to resize input tensor #{detail['index']}") from None

    # -- inputs and runs ------------------------------------------------------------------------
    def prepare_inputs(self) -> list[tuple[int, np.ndarray]]:
        rng = np.random.default_rng()
        data = []
        for i, detail in enumerate(self.interp.get_input_details()):
            dtype, shape = np.dtype(detail["dtype"]), tuple(detail["shape"])
            if dtype.kind in "OSU":
                raise Failed("String inputs are not supported on the virtual phone.")
            path = self.layers[i]["file"] if self.layers else ""
            if path:
                try:
                    raw = Path(path).read_bytes()
                except OSError:
                    raise Fatal(f"Failed to read the input_layer_value_file:{path}") from None
                expected = int(np.prod(shape)) * dtype.itemsize
                if len(raw) != expected:
                    raise Fatal(
                        f"The size of {path} is {len(raw)} bytes. It should be {expected} bytes."
                    )
                value = np.frombuffer(raw, dtype=dtype).reshape(shape)
            else:
                key = dtype.kind if dtype.kind in "fb" else dtype.str[1:]
                low, high = _RANGES.get(key, (0, 99))
                if dtype.kind == "f":
                    value = rng.uniform(low, high, size=shape).astype(dtype)
                else:
                    value = rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
            data.append((detail["index"], value))
        return data

    def run(self, min_runs: int, min_secs: float, max_secs: float, inputs) -> tuple[Stat, bool]:
        self.out.info(
            f"Running benchmark for at least {min_runs} iterations and at least "
            f"{fmt_g(min_secs)} seconds but terminate if exceeding {fmt_g(max_secs)} seconds."
        )
        stat, ok = Stat(), True
        now = now_us()
        min_finish, max_finish = now + int(min_secs * 1e6), now + int(max_secs * 1e6)
        delay, frequency = self.p["run_delay"], self.p["run_frequency"]
        next_finish = now * 1e-6 + (1.0 / frequency if frequency > 0 else 0.0)
        run = 0
        while (run < min_runs or now < min_finish) and now <= max_finish:
            for index, value in inputs:  # ResetInputsAndOutputs: same input every run
                self.interp.set_tensor(index, value)
            start = now_us()
            try:
                self.interp.invoke()
            except RuntimeError as exc:
                ok = False
                for line in str(exc).strip().splitlines():
                    self.out.runtime(line, "ERROR")
            if self.thermal is not None:  # emulated heating: a capped phone runs slower
                self.thermal.after_invoke((now_us() - start) / 1e6)
            stat.add(now_us() - start)
            if frequency > 0:
                delay = next_finish - now_us() * 1e-6
                next_finish += 1.0 / frequency
            if delay > 0:
                time.sleep(delay)
            now = now_us()
            run += 1
        print(f"INFO: {stat.text()}\n", flush=True)
        return stat, ok

    def outputs(self) -> list[np.ndarray]:
        get = self.interp.get_tensor
        if self.emulation is None:
            return [get(t) for t in self.graph.outputs]
        if self.emulation.faulted_ops(self.graph):  # faulted values flow on downstream
            from harness.virtual.benchmark_model.tail_model import propagate

            get = propagate(self.model_data, self.graph, self.emulation, get)
        return self.emulation.outputs(self.graph, get)


def benchmark(argv: list[str], out: Out) -> int:
    out.info("STARTING!")
    try:
        params = bm_flags.parse(argv)
    except bm_flags.FlagError as exc:
        out.error(str(exc))
        out.error(bm_flags.usage("benchmark_model"))
        return _failed(out)
    if params.help:
        out.error(bm_flags.usage("benchmark_model"))
        return _failed(out)
    out.info(
        "Running on a harness virtual phone: LiteRT on the host CPU; GPU/NNAPI delegates"
        " are emulated (see docs/virtual-phone.md)."
    )
    if params.unconsumed:
        out.warn("Unconsumed cmdline flags: " + " ".join(params.unconsumed))
    bench = Benchmark(params, out)
    try:
        return _run(bench, params, out)
    except Failed as exc:
        out.error(str(exc))
        return _failed(out)
    except Fatal as exc:
        print(f"FATAL: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.abort()
    except Exception as exc:  # a bug in the emulator: say so, keep the log parseable
        out.error(f"Internal error in the virtual benchmark_model: {exc!r}")
        traceback.print_exc()
        return _failed(out)


def _failed(out: Out) -> int:
    out.error("Benchmarking failed.")
    return 1


def _run(bench: Benchmark, p: bm_flags.Params, out: Out) -> int:
    bench.validate()
    bench.log_params()
    from harness.virtual import thermal  # emulated heating, off unless `harness virtual heat`

    bench.thermal = thermal.load(os.environ.get("HARNESS_VIRTUAL_ROOT"), bench.config)
    if bench.thermal is not None:
        out.warn(thermal.NOTE)
    monitor = None
    if p["report_peak_memory_footprint"]:
        monitor = PeakMemory(p["memory_footprint_check_interval_ms"])
        monitor.start()
    graph_path = Path(p["graph"])
    chaos = _chaos(bench.config, p)
    if "crash" in chaos:  # a native crash: the shell sees 139 (SIGSEGV)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in chaos:  # a wedged driver: never returns until killed
        while True:
            time.sleep(3600)
    size_mb = graph_path.stat().st_size / 1e6 if graph_path.is_file() else 0.0
    start_kb, t0 = maxrss_kb(), now_us()
    bench.init()
    init_kb, init_us = maxrss_kb(), now_us() - t0
    if size_mb > 0:
        out.info(f"The input model file size (MB): {fmt_g(size_mb)}")
    else:
        out.warn("Failed to get the input model file size.")
    out.info(f"Initialized session in {fmt_g(init_us / 1e3)}ms.")
    inputs = bench.prepare_inputs()
    warmup_runs, warmup_secs, runs, secs = (
        p["warmup_runs"],
        p["warmup_min_secs"],
        p["num_runs"],
        p["min_secs"],
    )
    if p["dry_run"]:
        warmup_runs, warmup_secs, runs, secs = 0, -1.0, 0, -1.0
    warmup, ok = bench.run(warmup_runs, warmup_secs, p["max_secs"], inputs)
    if not ok:
        return _failed(out)
    regular, ok = bench.run(runs, secs, p["max_secs"], inputs)
    if bench.thermal is not None:
        bench.thermal.flush()
    overall_kb = maxrss_kb()
    peak_mb = monitor.stop() if monitor else 0.0
    out.info(
        f"Inference timings in us: Init: {init_us}, First inference: {warmup.first}, "
        f"Warmup (avg): {fmt_g(warmup.avg)}, Inference (avg): {fmt_g(regular.avg)}"
    )
    out.info(
        "Note: as the benchmark tool itself affects memory footprint, the following is only"
        " APPROXIMATE to the actual memory footprint of the model at runtime. Take the"
        " information at your discretion."
    )
    init_mb, overall_mb = (init_kb - start_kb) / 1024.0, (overall_kb - start_kb) / 1024.0
    out.info(
        "Memory footprint delta from the start of the tool (MB): "
        f"init={fmt_g(init_mb)} overall={fmt_g(overall_mb)}"
    )
    if peak_mb > 0:
        rss, shared = statm()
        out.info(f"Overall peak memory footprint (MB) via periodic monitoring: {fmt_g(peak_mb)}")
        out.info("Memory status at the end of exeution:")
        out.info(f"- VmRSS              : {int(rss)} MB")
        out.info(f"+ RssAnnon           : {int(rss) - int(shared)} MB")
        out.info(f"+ RssFile + RssShmem : {int(shared)} MB")
    if p["enable_op_profiling"]:  # each node timed alone: see op_profile.py
        from harness.virtual.benchmark_model import op_profile

        op_profile.print_profile(bench, inputs, regular.text())
    if p["output_filepath"]:
        # Like the tool: an unopenable file is silently skipped.
        with contextlib.suppress(OSError), open(p["output_filepath"], "wb") as fh:
            data = b"".join(np.ascontiguousarray(a).tobytes() for a in bench.outputs())
            fh.write(data[: len(data) // 2] if "truncate" in chaos else data)
    return 0 if ok else _failed(out)


def _chaos(config: dict, p: bm_flags.Params) -> set[str]:
    """Faults injected on demand (tests, ``harness virtual chaos``): ``virtual.json`` may hold
    ``"chaos": [{"match": "<substring of the --graph path>", "action": "crash|hang|truncate",
    "when": "latency|accuracy|any"}]``. ``accuracy`` means runs with --output_filepath."""
    actions = set()
    accuracy = bool(p["output_filepath"])
    for rule in config.get("chaos", []) if isinstance(config.get("chaos"), list) else []:
        if not isinstance(rule, dict) or str(rule.get("match", "")) not in str(p["graph"]):
            continue
        when = rule.get("when", "any")
        if when == "any" or (when == "accuracy") == accuracy:
            actions.add(str(rule.get("action", "")))
    return actions


def main(argv: list[str] | None = None) -> int:
    return benchmark(list(sys.argv[1:] if argv is None else argv), Out())


if __name__ == "__main__":
    sys.exit(main())
