"""Flags of the virtual ``benchmark_model``: the official tool's names, types and defaults.

Parsing follows tflite::Flags: ``--name=value`` only, bools accept ``true/false/1/0``, a bad value
is an error, unknown arguments are reported as unconsumed and otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # "int32" | "float" | "bool" | "string"
    default: object
    label: str = ""  # LogParams label; "" = not logged
    always_log: bool = False


def _f(name: str, kind: str, default: object, label: str = "", always: bool = False) -> Flag:
    return Flag(name, kind, default, label, always)


FLAGS: tuple[Flag, ...] = (
    # BenchmarkModel
    _f("num_runs", "int32", 50, "Min num runs"),
    _f("min_secs", "float", 1.0, "Min runs duration (seconds)"),
    _f("max_secs", "float", 150.0, "Max runs duration (seconds)"),
    _f("run_delay", "float", -1.0, "Inter-run delay (seconds)"),
    _f("run_frequency", "float", -1.0, "Number of prorated runs per second"),
    _f("num_threads", "int32", -1, "Num threads"),
    _f("use_caching", "bool", False, "Use caching"),
    _f("benchmark_name", "string", "", "Benchmark name"),
    _f("output_prefix", "string", "", "Output prefix"),
    _f("warmup_runs", "int32", 1, "Min warmup runs"),
    _f("warmup_min_secs", "float", 0.5, "Min warmup runs duration (seconds)"),
    _f("verbose", "bool", False),
    _f("dry_run", "bool", False, "Run w/o invoking kernels"),
    _f("report_peak_memory_footprint", "bool", False, "Report the peak memory footprint"),
    _f("memory_footprint_check_interval_ms", "int32", 50, "Memory footprint check interval (ms)"),
    # BenchmarkTfLiteModel
    _f("graph", "string", "", "Graph", always=True),
    _f("signature_to_run_for", "string", "", "Signature to run", always=True),
    _f("list_signatures", "bool", False),
    _f("input_layer", "string", "", "Input layers"),
    _f("input_layer_shape", "string", "", "Input shapes"),
    _f("input_layer_value_range", "string", "", "Input value ranges"),
    _f("input_layer_value_files", "string", "", "Input value files"),
    _f("allow_fp16", "bool", False, "Allow fp16"),
    _f("require_full_delegation", "bool", False, "Require full delegation"),
    _f("enable_op_profiling", "bool", False, "Enable op profiling"),
    _f("op_profiling_output_mode", "string", "stdout", "Op profiling output mode."),
    _f("op_profiling_output_file", "string", "", "Op profiling output file."),
    _f("max_profiling_buffer_entries", "int32", 1024, "Max initial profiling buffer entries"),
    _f("allow_dynamic_profiling_buffer_increase", "bool", False),
    _f("profiling_output_csv_file", "string", "", "CSV File to export profiling data to"),
    _f("print_preinvoke_state", "bool", False, "Print pre-invoke interpreter state"),
    _f("print_postinvoke_state", "bool", False, "Print post-invoke interpreter state"),
    _f("release_dynamic_tensors", "bool", False, "Release dynamic tensor memory"),
    _f("optimize_memory_for_large_tensors", "int32", 0, "Optimize memory usage for large tensors"),
    _f("disable_delegate_clustering", "bool", False, "Disable delegate clustering"),
    _f("enable_builtin_cast_constant_cache", "bool", False, "Constant CAST output cache"),
    _f("output_filepath", "string", "", "File path to export outputs layer to"),
    # delegate providers
    _f("use_gpu", "bool", False, "Use gpu"),
    _f("gpu_precision_loss_allowed", "bool", True, "Allow lower precision in gpu"),
    _f("gpu_experimental_enable_quant", "bool", True, "Enable running quant models in gpu"),
    _f(
        "gpu_inference_for_sustained_speed",
        "bool",
        False,
        "Prefer maximizing the throughput in gpu",
    ),
    _f("gpu_backend", "string", "", "GPU backend"),
    _f("use_nnapi", "bool", False, "Use NNAPI"),
    _f("nnapi_execution_preference", "string", "", "nnapi execution preference"),
    _f("nnapi_execution_priority", "string", "", "model execution priority in nnapi"),
    _f("nnapi_accelerator_name", "string", "", "nnapi accelerator name"),
    _f("disable_nnapi_cpu", "bool", True, "Disable NNAPI cpu"),
    _f("nnapi_allow_fp16", "bool", False, "Allow fp16 in NNAPI"),
    _f("use_xnnpack", "bool", False, "Use xnnpack"),
    _f("xnnpack_force_fp16", "bool", False, "Force fp16 in xnnpack"),
    _f("use_hexagon", "bool", False, "Use Hexagon"),
    _f(
        "delegate_serialize_dir",
        "string",
        "",
        "Directory to be used by delegates for serializing any model data",
    ),
    _f(
        "delegate_serialize_token",
        "string",
        "",
        "Model-specific token/key for delegate serialization.",
    ),
    _f("max_delegated_partitions", "int32", 0, "Max number of delegated partitions"),
    _f("min_nodes_per_partition", "int32", 0, "Min nodes per partition"),
    _f("external_delegate_path", "string", "", "External delegate path"),
    _f("external_delegate_options", "string", "", "External delegate options"),
)
BY_NAME = {flag.name: flag for flag in FLAGS}


class FlagError(ValueError):
    pass


def _value(flag: Flag, text: str) -> object:
    if flag.kind == "bool":
        if text not in ("true", "false", "1", "0"):
            raise FlagError(text)
        return text in ("true", "1")
    if flag.kind == "int32":
        value = int(text, 10)
        if not -(2**31) <= value < 2**31:
            raise FlagError(text)
        return value
    if flag.kind == "float":
        return float(text)
    return text


@dataclass
class Params:
    values: dict[str, object]
    explicit: set[str]
    unconsumed: list[str]
    help: bool = False

    def __getitem__(self, name: str):  # noqa: ANN204 - typed by the flag table
        return self.values[name]


def parse(argv: list[str]) -> Params:
    """Parse ``--name=value`` arguments. Raises FlagError(message) for a bad value."""
    values = {flag.name: flag.default for flag in FLAGS}
    params = Params(values, set(), [])
    for arg in argv:
        if arg in ("--help", "--help=true", "-h"):
            params.help = True
            continue
        name, sep, text = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        flag = BY_NAME.get(name) if sep else None
        if flag is None:
            params.unconsumed.append(arg)
            continue
        try:
            values[name] = _value(flag, text)
        except (ValueError, FlagError):
            raise FlagError(f"Failed to parse flag '{name}' against argv '{arg}'") from None
        params.explicit.add(name)
    return params


def fmt(value: object) -> str:
    """A value as the C++ tool streams it (bool as 0/1, float like %g)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def usage(argv0: str) -> str:
    lines = [f"usage: {argv0}", "Flags:"]
    for flag in FLAGS:
        default = flag.default
        text = ("true" if default else "false") if isinstance(default, bool) else fmt(default)
        lines.append(f"\t--{flag.name}={text}\t{flag.kind}\toptional\t{flag.label}")
    return "\n".join(lines)
