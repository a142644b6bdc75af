"""Delegate names -> benchmark_model flags, and the invocation's argv."""

from __future__ import annotations

import shlex

import pytest

from harness.errors import UsageError
from harness.runner import BenchmarkInvocation, Delegate, InputLayer, parse_delegate


def _flags(inv: BenchmarkInvocation) -> dict[str, str]:
    out = {}
    for arg in inv.flags():
        name, _, value = arg[2:].partition("=")
        assert name not in out, f"duplicate flag {name}"
        out[name] = value
    return out


@pytest.mark.parametrize(
    ("name", "expected", "absent"),
    [
        ("cpu", {"use_gpu": "false", "num_threads": "4"}, ["use_nnapi", "gpu_backend"]),
        ("cpu1", {"use_gpu": "false", "num_threads": "1"}, ["use_nnapi"]),
        ("gpu", {"use_gpu": "true", "gpu_precision_loss_allowed": "true"}, ["gpu_backend"]),
        ("gpu-fp32", {"use_gpu": "true", "gpu_precision_loss_allowed": "false"}, ["gpu_backend"]),
        (
            "gpu-cl",
            {"use_gpu": "true", "gpu_precision_loss_allowed": "true", "gpu_backend": "cl"},
            [],
        ),
        (
            "gpu-gl",
            {"use_gpu": "true", "gpu_precision_loss_allowed": "true", "gpu_backend": "gl"},
            [],
        ),
        ("nnapi", {"use_nnapi": "true", "use_gpu": "false"}, ["gpu_backend"]),
    ],
)
def test_delegate_flags(name, expected, absent):
    flags = _flags(BenchmarkInvocation("/data/local/tmp/m.tflite", parse_delegate(name), threads=4))
    for key, value in expected.items():
        assert flags[key] == value
    for key in absent:
        assert key not in flags


def test_gpu_is_the_default_and_fp16():
    inv = BenchmarkInvocation("/data/local/tmp/m.tflite")
    assert inv.delegate is Delegate.GPU
    assert Delegate.GPU.precision == "fp16" and Delegate.GPU_FP32.precision == "fp32"
    assert Delegate.GPU_GL.gpu_backend == "gl" and Delegate.GPU.gpu_backend == ""
    assert not Delegate.NNAPI.is_gpu and Delegate.GPU_CL.is_gpu


def test_unknown_delegate_lists_known_ones():
    with pytest.raises(UsageError) as info:
        parse_delegate("gpu16")
    message = str(info.value)
    for known in ("cpu", "cpu1", "gpu", "gpu-fp32", "gpu-cl", "gpu-gl", "nnapi"):
        assert known in message
    assert info.value.exit_code == 2


def test_delegate_names_are_case_insensitive_and_strings_accepted():
    assert parse_delegate(" GPU-FP32 ") is Delegate.GPU_FP32
    assert BenchmarkInvocation("/m.tflite", "cpu1").delegate is Delegate.CPU1


def test_exact_counts_zero_the_minimum_durations():
    flags = _flags(BenchmarkInvocation("/m.tflite", warmup_runs=3, runs=20))
    assert flags["warmup_runs"] == "3" and flags["num_runs"] == "20"
    assert flags["min_secs"] == "0" and flags["warmup_min_secs"] == "0"
    assert "max_secs" not in flags
    timed = _flags(BenchmarkInvocation("/m.tflite", exact_counts=False, max_secs=30.5))
    assert "min_secs" not in timed and timed["max_secs"] == "30.5"


def test_cpu1_forces_one_thread_and_cpu_without_threads_uses_tool_default():
    assert _flags(BenchmarkInvocation("/m.tflite", "cpu1", threads=4))["num_threads"] == "1"
    assert "num_threads" not in _flags(BenchmarkInvocation("/m.tflite", "cpu"))


def test_inputs_value_files_escape_colons():
    inv = BenchmarkInvocation(
        "/data/local/tmp/m.tflite",
        "cpu",
        inputs=(
            InputLayer("serving_default_input:0", (1, 128, 128, 3), "/data/local/tmp/in:a.bin"),
            InputLayer("prior", [1, 128, 128, 1]),
        ),
        output_filepath="/data/local/tmp/out.bin",
    )
    flags = _flags(inv)
    assert flags["input_layer"] == "serving_default_input:0,prior"
    assert flags["input_layer_shape"] == "1,128,128,3:1,128,128,1"
    assert flags["input_layer_value_files"] == (
        "serving_default_input::0:/data/local/tmp/in::a.bin"
    )
    assert flags["output_filepath"] == "/data/local/tmp/out.bin"


def test_optional_flags_and_argv_quoting_is_left_to_the_caller():
    inv = BenchmarkInvocation(
        "/data/local/tmp/my model.tflite",
        "gpu",
        delegate_serialize_dir="/data/local/tmp/cache",
        delegate_serialize_token="light128_fp16",
        enable_op_profiling=True,
        report_peak_memory_footprint=True,
        require_full_delegation=True,
        use_xnnpack=False,
        run_delay=0.5,
    )
    argv = inv.argv("/data/local/tmp/benchmark_model")
    assert argv[0] == "/data/local/tmp/benchmark_model"
    assert argv[1] == "--graph=/data/local/tmp/my model.tflite"
    flags = _flags(inv)
    assert flags["delegate_serialize_dir"] == "/data/local/tmp/cache"
    assert flags["delegate_serialize_token"] == "light128_fp16"
    assert flags["enable_op_profiling"] == "true"
    assert flags["report_peak_memory_footprint"] == "true"
    assert flags["require_full_delegation"] == "true"
    assert flags["use_xnnpack"] == "false"
    assert flags["run_delay"] == "0.5"
    assert shlex.split(shlex.join(argv)) == argv


@pytest.mark.parametrize(
    "kwargs",
    [
        {"graph": ""},
        {"graph": "/m.tflite", "threads": 0},
        {"graph": "/m.tflite", "runs": -1},
        {"graph": "/m.tflite", "delegate_serialize_dir": "/d"},
        {"graph": "/m.tflite", "extra_flags": ("num_runs=3",)},
        {"graph": "/m.tflite", "max_secs": 0},
    ],
)
def test_invalid_invocations_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        BenchmarkInvocation(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "a,b", "shape": (1, 2)},
        {"name": "x", "shape": (1, 0)},
        {"name": "x", "shape": (1, 2), "value_file": "/a,b.bin"},
        {"name": "x", "shape": "abc"},
    ],
)
def test_input_layers_that_cannot_be_expressed_are_rejected(kwargs):
    with pytest.raises(UsageError):
        InputLayer(**kwargs)


def test_delegate_flags_on_their_own():
    assert Delegate.CPU1.flags() == ("--use_gpu=false", "--num_threads=1")
    assert Delegate.CPU.flags(6) == ("--use_gpu=false", "--num_threads=6")
    assert Delegate.GPU_FP32.flags() == ("--use_gpu=true", "--gpu_precision_loss_allowed=false")
