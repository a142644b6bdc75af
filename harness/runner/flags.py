"""Delegate names and the ``benchmark_model`` command line (FACTS.md §1).

Pure: nothing here touches a device. :class:`BenchmarkInvocation` turns what the harness wants
measured into the argv of the official TFLite ``benchmark_model``; quoting for ``adb shell`` is
the caller's job (``shlex.join``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from harness.errors import UsageError

__all__ = [
    "DEFAULT_BINARY",
    "DEFAULT_DELEGATE",
    "BenchmarkInvocation",
    "Delegate",
    "InputLayer",
    "delegate_label",
    "is_cpu_delegate",
    "parse_delegate",
]

DEFAULT_BINARY = "/data/local/tmp/benchmark_model"


@dataclass(frozen=True)
class _DelegateSpec:
    flags: tuple[str, ...]
    label: str  # what reports and diagnose call it
    gpu: bool = False
    precision: str = "fp32"  # arithmetic the accelerator is allowed to use
    backend: str = ""  # gpu backend forced by the flags ("" = the tool's choice: CL, then GL)
    fixed_threads: int | None = None
    accelerator: bool = True  # False: the CPU runs the model without a delegate
    color: str = ""  # chart colour ("" = the next free one of the palette)


class Delegate(Enum):
    """What runs the model, and every fact about it (flags, label, CPU or accelerator, GPU
    backend, chart colour). ``gpu`` (FP16, precision loss allowed) is the harness default:
    :data:`DEFAULT_DELEGATE`."""

    CPU = "cpu"
    CPU1 = "cpu1"
    GPU = "gpu"
    GPU_FP32 = "gpu-fp32"
    GPU_CL = "gpu-cl"
    GPU_GL = "gpu-gl"
    NNAPI = "nnapi"

    @property
    def spec(self) -> _DelegateSpec:
        return _DELEGATES[self]

    def flags(self, threads: int | None = None) -> tuple[str, ...]:
        """The delegate's flags plus ``--num_threads`` (forced to 1 for ``cpu1``; omitted when
        ``threads`` is None, leaving the tool's default)."""
        spec = self.spec
        count = spec.fixed_threads if spec.fixed_threads is not None else threads
        return spec.flags + ((f"--num_threads={count}",) if count is not None else ())

    @property
    def is_gpu(self) -> bool:
        return self.spec.gpu

    @property
    def precision(self) -> str:
        return self.spec.precision

    @property
    def gpu_backend(self) -> str:
        return self.spec.backend

    @property
    def label(self) -> str:
        """``GPU FP16 (OpenCL)``."""
        return self.spec.label

    @property
    def is_cpu(self) -> bool:
        """The CPU runs the model itself: nothing to delegate, no delegation verdict."""
        return not self.spec.accelerator

    @property
    def has_delegation_verdict(self) -> bool:
        """benchmark_model says whether the graph was delegated (GPU and NNAPI)."""
        return not self.is_cpu

    @property
    def color(self) -> str:
        return self.spec.color

    @classmethod
    def lookup(cls, name: str) -> Delegate | None:
        """The delegate named ``name``, or None for a name this harness does not know (an old
        or foreign store): for readers, which show such a name as it is."""
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            return None


_FP16 = "--gpu_precision_loss_allowed=true"
_CPU = "--use_gpu=false"
_DELEGATES: dict[Delegate, _DelegateSpec] = {
    Delegate.CPU: _DelegateSpec((_CPU,), "CPU", accelerator=False, color="#4c78a8"),
    Delegate.CPU1: _DelegateSpec((_CPU,), "CPU (1 thread)", accelerator=False, fixed_threads=1),
    Delegate.GPU: _DelegateSpec(
        ("--use_gpu=true", _FP16), "GPU FP16", gpu=True, precision="fp16", color="#f58518"
    ),
    Delegate.GPU_FP32: _DelegateSpec(
        ("--use_gpu=true", "--gpu_precision_loss_allowed=false"),
        "GPU FP32",
        gpu=True,
        color="#54a24b",
    ),
    Delegate.GPU_CL: _DelegateSpec(
        ("--use_gpu=true", _FP16, "--gpu_backend=cl"),
        "GPU FP16 (OpenCL)",
        gpu=True,
        precision="fp16",
        backend="cl",
    ),
    Delegate.GPU_GL: _DelegateSpec(
        ("--use_gpu=true", _FP16, "--gpu_backend=gl"),
        "GPU FP16 (OpenGL)",
        gpu=True,
        precision="fp16",
        backend="gl",
    ),
    Delegate.NNAPI: _DelegateSpec((_CPU, "--use_nnapi=true"), "NNAPI"),
}
DEFAULT_DELEGATE = Delegate.GPU  # one default: BenchmarkInvocation's, and the harness's


def parse_delegate(name: str | Delegate) -> Delegate:
    """``"gpu-fp32"`` -> :attr:`Delegate.GPU_FP32`; unknown names are a usage error."""
    if isinstance(name, Delegate):
        return name
    found = Delegate.lookup(name)
    if found is None:
        known = ", ".join(d.value for d in Delegate)
        raise UsageError(f"unknown delegate {name!r}; known delegates: {known}")
    return found


def delegate_label(name: str) -> str:
    """A delegate's label; a name this harness does not know, as it is."""
    found = Delegate.lookup(name)
    return found.label if found else name


def is_cpu_delegate(name: str) -> bool:
    """``name`` runs on the CPU without a delegate (an unknown name: False)."""
    found = Delegate.lookup(name)
    return bool(found and found.is_cpu)


@dataclass(frozen=True)
class InputLayer:
    """One model input fed from a raw file already on the device (same bytes every run)."""

    name: str
    shape: tuple[int, ...]
    value_file: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        except (TypeError, ValueError):
            raise UsageError(f"input layer {self.name!r}: bad shape {self.shape!r}") from None
        if not self.name or any(c in self.name for c in ",\n\0"):
            raise UsageError(f"input layer name {self.name!r} cannot be passed to benchmark_model")
        if not self.shape or any(d <= 0 for d in self.shape):
            raise UsageError(f"input layer {self.name!r}: shape must be positive, got {self.shape}")
        if self.value_file is not None and (
            not self.value_file or any(c in self.value_file for c in ",\n\0")
        ):
            raise UsageError(f"input value file {self.value_file!r} cannot contain ',' or newlines")


def _escape_colon(text: str) -> str:
    # benchmark_model splits "name:path" on a single ':' and turns '::' back into ':'.
    return text.replace(":", "::")


def _num(value: float) -> str:
    return repr(float(value)) if float(value) != int(value) else str(int(value))


@dataclass(frozen=True)
class BenchmarkInvocation:
    """One ``benchmark_model`` run. ``exact_counts`` makes warmup/regular run counts exact by
    zeroing the minimum durations (the tool's loop runs ``while (run < num_runs || now <
    min_finish) && now <= max_finish``); ``max_secs`` still caps a slow model."""

    graph: str
    delegate: Delegate = DEFAULT_DELEGATE
    threads: int | None = None
    warmup_runs: int = 1
    runs: int = 50
    exact_counts: bool = True
    max_secs: float | None = None
    run_delay: float | None = None
    inputs: tuple[InputLayer, ...] = ()
    output_filepath: str | None = None
    delegate_serialize_dir: str | None = None
    delegate_serialize_token: str | None = None
    enable_op_profiling: bool = False
    report_peak_memory_footprint: bool = False
    require_full_delegation: bool = False
    use_xnnpack: bool | None = None
    extra_flags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "delegate", parse_delegate(self.delegate))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "extra_flags", tuple(self.extra_flags))
        if not self.graph or "\n" in self.graph:
            raise UsageError("benchmark_model needs a --graph path")
        if self.threads is not None and self.threads != -1 and self.threads < 1:
            raise UsageError(
                f"threads must be >= 1 (or -1 for the tool default), got {self.threads}"
            )
        if self.warmup_runs < 0 or self.runs < 0:
            raise UsageError("warmup_runs and runs must be >= 0")
        if self.max_secs is not None and self.max_secs <= 0:
            raise UsageError("max_secs must be > 0")
        if bool(self.delegate_serialize_dir) != bool(self.delegate_serialize_token):
            raise UsageError("delegate_serialize_dir and delegate_serialize_token go together")
        if any(not f.startswith("--") for f in self.extra_flags):
            raise UsageError("extra benchmark_model flags must look like --name=value")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise UsageError(f"duplicate input layer names: {names}")

    def flags(self) -> list[str]:
        """The flags, in a stable order (graph first)."""
        out = [f"--graph={self.graph}"]
        out += [f"--warmup_runs={self.warmup_runs}", f"--num_runs={self.runs}"]
        if self.exact_counts:
            out += ["--warmup_min_secs=0", "--min_secs=0"]
        if self.max_secs is not None:
            out.append(f"--max_secs={_num(self.max_secs)}")
        if self.run_delay is not None:
            out.append(f"--run_delay={_num(self.run_delay)}")
        out += list(self.delegate.flags(self.threads))
        if self.use_xnnpack is not None:
            out.append(f"--use_xnnpack={'true' if self.use_xnnpack else 'false'}")
        if self.require_full_delegation:
            out.append("--require_full_delegation=true")
        if self.inputs:
            out.append("--input_layer=" + ",".join(i.name for i in self.inputs))
            out.append(
                "--input_layer_shape=" + ":".join(",".join(map(str, i.shape)) for i in self.inputs)
            )
            files = [
                f"{_escape_colon(i.name)}:{_escape_colon(i.value_file)}"
                for i in self.inputs
                if i.value_file
            ]
            if files:
                out.append("--input_layer_value_files=" + ",".join(files))
        if self.output_filepath:
            out.append(f"--output_filepath={self.output_filepath}")
        if self.delegate_serialize_dir:
            out.append(f"--delegate_serialize_dir={self.delegate_serialize_dir}")
            out.append(f"--delegate_serialize_token={self.delegate_serialize_token}")
        if self.enable_op_profiling:
            out.append("--enable_op_profiling=true")
        if self.report_peak_memory_footprint:
            out.append("--report_peak_memory_footprint=true")
        out += list(self.extra_flags)
        return out

    def argv(self, binary: str = DEFAULT_BINARY) -> list[str]:
        """``[binary, *flags]``; join with ``shlex.join`` for ``adb shell``."""
        return [binary, *self.flags()]
