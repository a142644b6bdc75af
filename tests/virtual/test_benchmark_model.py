"""The virtual phone's benchmark_model, run as a subprocess on tiny models."""

from __future__ import annotations

import os
import signal
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from harness.runner import (
    BenchmarkInvocation,
    GpuBackend,
    InputLayer,
    UnsupportedOp,
    Verdict,
    is_compiled_model_tool,
    parse_log,
)
from tests.virtual.conftest import REPO, run_benchmark

SHAPE = (1, 8, 8, 3)


def _input_file(tmp_path: Path, seed: int = 1) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(seed).uniform(-1, 1, SHAPE).astype(np.float32)
    path = tmp_path / "in:put.bin"  # a ':' in the path exercises the '::' escaping
    path.write_bytes(data.tobytes())
    return path, data


def _interpreter(model: Path, preserve: bool = False) -> Interpreter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(
            model_path=str(model), num_threads=1, experimental_preserve_all_tensors=preserve
        )
    interp.allocate_tensors()
    return interp


def _invoke(interp: Interpreter, data: np.ndarray) -> None:
    interp.set_tensor(interp.get_input_details()[0]["index"], data)
    interp.invoke()


def _bench(models, head, delegate, tmp_path, env, *, runs=3, warmup=1, **kw):
    """Run the virtual tool with the harness's own flag builder; returns (process, log, out)."""
    path, data = _input_file(tmp_path)
    interp = _interpreter(models[head])
    name = interp.get_input_details()[0]["name"]
    out = tmp_path / "out.bin"
    inv = BenchmarkInvocation(
        str(models[head]),
        delegate,
        threads=1,
        warmup_runs=warmup,
        runs=runs,
        inputs=(InputLayer(name, SHAPE, str(path)),),
        output_filepath=str(out),
        **kw,
    )
    proc = run_benchmark(inv.flags(), env)
    return proc, parse_log(proc.stdout, proc.stderr), out, data


def test_cpu_run_counts_are_exact_and_log_parses(models, phone, tmp_path):
    proc, log, _, _ = _bench(models, "softmax", "cpu1", tmp_path, phone(), runs=7, warmup=3)
    assert proc.returncode == 0, proc.stderr
    assert log.ok and log.virtual
    assert log.warmup.count == 3 and log.inference.count == 7
    assert log.model_path == str(models["softmax"])
    assert log.model_size_mb == pytest.approx(models["softmax"].stat().st_size / 1e6, rel=1e-5)
    # The log prints init in ms with 6 significant digits (1236.1 ms past a second): within
    # half a unit of the 6th digit of the microseconds, or 1 us, whichever is larger.
    assert log.init_ms > 0 and log.init_us == pytest.approx(log.init_ms * 1000, rel=1e-5, abs=1)
    inf = log.inference
    assert 0 < inf.min <= inf.p5 <= inf.median <= inf.p95 <= inf.max
    assert log.inference_avg_us == pytest.approx(inf.avg, rel=1e-5)
    assert log.first_inference_us == log.warmup.first
    assert log.verdict is Verdict.NONE and log.xnnpack_applied
    assert log.mem_overall_mb is not None and log.param("Num threads") == "1"
    assert not log.warning_lines  # the input layer name matched the model's ("image:0"-style)
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in proc.stderr


def test_time_based_loop_semantics(models, phone):
    env = phone()
    graph = f"--graph={models['softmax']}"
    longer = parse_log(
        run_benchmark(
            [graph, "--warmup_runs=1", "--warmup_min_secs=0", "--num_runs=1", "--min_secs=0.3"], env
        ).stdout
    )
    assert longer.warmup.count == 1 and longer.inference.count > 1  # ran on until min_secs
    capped = parse_log(
        run_benchmark(
            [
                graph,
                "--warmup_runs=1",
                "--warmup_min_secs=0",
                "--num_runs=100000000",
                "--min_secs=0",
                "--max_secs=0.2",
            ],
            env,
        ).stdout
    )
    assert 1 <= capped.inference.count < 100000000  # max_secs stops the loop
    assert capped.phases[1] == type(capped.phases[1])(100000000, 0.0, 0.2)


def test_output_file_equals_desktop_litert_cpu(models, phone, tmp_path):
    proc, log, out, data = _bench(models, "softmax", "cpu1", tmp_path, phone())
    assert proc.returncode == 0 and log.ok
    ref = _interpreter(models["softmax"])
    _invoke(ref, data)
    expected = ref.get_tensor(ref.get_output_details()[0]["index"])
    assert out.read_bytes() == expected.tobytes()


def _softmax16(x: np.ndarray) -> np.ndarray:
    h = x.astype(np.float16)
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True, dtype=np.float16)).astype(np.float32)


def _preserved(models, head, data, op_name):
    """Desktop LiteRT CPU run; returns (input tensor of the op named op_name, model output)."""
    ref = _interpreter(models[head], preserve=True)
    _invoke(ref, data)
    op = next(o for o in ref._get_ops_details() if o["op_name"] == op_name)
    return ref.get_tensor(int(op["inputs"][0])), ref.get_tensor(
        ref.get_output_details()[0]["index"]
    )


def test_gpu_fp16_softmax_is_the_float16_recomputation(models, phone, tmp_path):
    proc, log, out, data = _bench(models, "softmax", "gpu", tmp_path, phone())
    assert proc.returncode == 0, proc.stderr
    assert log.verdict is Verdict.FULL and log.gpu_backend is GpuBackend.OPENCL
    assert (log.replaced_nodes, log.total_nodes, log.partitions) == (3, 3, 1)
    assert "XNNPACK" not in proc.stderr  # an explicit delegate disables the default one
    logits, cpu = _preserved(models, "softmax", data, "SOFTMAX")
    got = np.frombuffer(out.read_bytes(), np.float32).reshape(cpu.shape)
    assert got.tobytes() == _softmax16(logits).tobytes()
    assert not np.array_equal(got, cpu)  # FP16 really changed something...
    assert np.abs(got - cpu).max() < 2e-3  # ...by FP16-sized amounts


def test_gpu_fp16_logistic_is_the_float16_recomputation(models, phone, tmp_path):
    proc, log, out, data = _bench(models, "sigmoid", "gpu", tmp_path, phone())
    assert proc.returncode == 0 and log.verdict is Verdict.FULL
    logits, cpu = _preserved(models, "sigmoid", data, "LOGISTIC")
    h = logits.astype(np.float16)
    expected = (np.float16(1) / (np.float16(1) + np.exp(-h))).astype(np.float32)
    got = np.frombuffer(out.read_bytes(), np.float32).reshape(cpu.shape)
    assert got.tobytes() == expected.tobytes() and not np.array_equal(got, cpu)


def test_gpu_fp32_equals_cpu_up_to_float_error(models, phone, tmp_path):
    proc, log, out, data = _bench(models, "softmax", "gpu-fp32", tmp_path, phone())
    assert proc.returncode == 0 and log.verdict is Verdict.FULL
    assert log.param("Allow lower precision in gpu") == "0"
    _, cpu = _preserved(models, "softmax", data, "SOFTMAX")
    got = np.frombuffer(out.read_bytes(), np.float32).reshape(cpu.shape)
    np.testing.assert_allclose(got, cpu, rtol=1e-6, atol=1e-7)


def test_argmax_head_is_a_partial_delegation(models, phone, tmp_path):
    proc, log, out, data = _bench(models, "argmax", "gpu-cl", tmp_path, phone())
    assert proc.returncode == 0, proc.stderr
    assert log.verdict is Verdict.PARTIAL and log.delegate_kernels == 1
    assert log.unsupported_ops == (UnsupportedOp("ARG_MAX", "Operation is not supported."),)
    assert (log.gpu_ops, log.cpu_ops) == (2, 1)
    assert (log.replaced_nodes, log.total_nodes, log.partitions) == (2, 3, 2)
    # ARG_MAX runs on the CPU, on logits that come out of the GPU partition in FP16.
    logits, cpu = _preserved(models, "argmax", data, "ARG_MAX")
    expected = np.argmax(logits.astype(np.float16).astype(np.float32), axis=-1)
    got = np.frombuffer(out.read_bytes(), cpu.dtype).reshape(cpu.shape)
    assert np.array_equal(got, expected.astype(cpu.dtype))


def test_require_full_delegation_fails_on_partial(models, phone, tmp_path):
    proc, log, _, _ = _bench(
        models, "argmax", "gpu", tmp_path, phone(), require_full_delegation=True
    )
    assert proc.returncode == 1 and log.failed
    assert "Disallowed CPU fallback detected." in log.error_lines


def test_input_size_mismatch_fails_with_the_exact_message(models, phone, tmp_path):
    bad = tmp_path / "short.bin"
    bad.write_bytes(b"\0" * 100)
    inv = BenchmarkInvocation(
        str(models["softmax"]),
        "cpu",
        runs=1,
        inputs=(InputLayer("serving_default_image:0", SHAPE, str(bad)),),
    )
    proc = run_benchmark(inv.flags(), phone())
    assert proc.returncode in (-signal.SIGABRT, 128 + signal.SIGABRT)
    expected = f"The size of {bad} is 100 bytes. It should be {4 * int(np.prod(SHAPE))} bytes."
    assert f"FATAL: {expected}\n" in proc.stderr
    log = parse_log(proc.stdout, proc.stderr)
    assert log.fatal and log.failed and expected in log.error_lines
    assert log.init_ms is not None and log.warmup is None  # failed after init, before runs
    assert not list(tmp_path.glob("core*"))


def test_gl_only_profile_falls_back_from_opencl(models, phone, tmp_path):
    proc, log, out, _ = _bench(models, "softmax", "gpu", tmp_path, phone(gpu_backends=["gl"]))
    assert proc.returncode == 0
    assert 'library "libOpenCL.so" not found' in proc.stderr
    assert log.opencl_missing and log.cl_to_gl_fallback
    assert log.gpu_backend is GpuBackend.OPENGL and log.verdict is Verdict.FULL
    assert out.stat().st_size == 4 * 8 * 8 * 2


def test_gl_only_profile_fails_when_opencl_is_forced(models, phone, tmp_path):
    proc, log, out, _ = _bench(models, "softmax", "gpu-cl", tmp_path, phone(gpu_backends=["gl"]))
    assert proc.returncode == 1
    assert log.failed and log.verdict is Verdict.FAILED and log.opencl_missing
    assert not log.cl_to_gl_fallback and log.inference is None
    assert proc.stderr.rstrip().endswith("ERROR: Benchmarking failed.")
    assert not out.exists()


def test_the_2019_delegate_runs_opengl_only(models, phone, tmp_path):
    """gl-2019 on a phone with OpenCL: GL directly (no fallback lines); forcing CL fails."""
    env = phone(gpu_delegate="gl-2019", mediump_bits=16)
    proc, log, out, _ = _bench(models, "softmax", "gpu", tmp_path, env)
    assert proc.returncode == 0 and "libOpenCL" not in proc.stderr
    assert log.gpu_backend is GpuBackend.OPENGL and not log.cl_to_gl_fallback
    assert out.stat().st_size == 4 * 8 * 8 * 2
    proc, log, out, _ = _bench(models, "softmax", "gpu-cl", tmp_path, env)
    assert proc.returncode == 1 and log.failed
    assert "this GPU delegate (gl-2019) has no OpenCL backend" in proc.stderr


def test_nnapi_absent_falls_back_to_cpu(models, phone, tmp_path):
    proc, log, _, _ = _bench(models, "softmax", "nnapi", tmp_path, phone())
    assert proc.returncode == 0 and log.ok
    assert log.nnapi_unavailable and log.verdict is Verdict.NONE and log.xnnpack_applied


def test_nnapi_present_when_the_profile_has_it(models, phone, tmp_path):
    proc, log, out, data = _bench(
        models, "softmax", "nnapi", tmp_path, phone(gpu_backends=["cl", "gl", "nnapi"])
    )
    assert proc.returncode == 0 and log.verdict is Verdict.FULL and log.delegate == "NNAPI"
    _, cpu = _preserved(models, "softmax", data, "SOFTMAX")
    np.testing.assert_allclose(
        np.frombuffer(out.read_bytes(), np.float32).reshape(cpu.shape), cpu, rtol=1e-6
    )


def test_bad_flag_value_and_unconsumed_flags(models, phone):
    env = phone()
    bad = run_benchmark([f"--graph={models['softmax']}", "--num_runs=abc"], env)
    assert bad.returncode == 1
    assert "ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=abc'" in bad.stderr
    assert parse_log(bad.stdout, bad.stderr).failed
    extra = run_benchmark(
        [f"--graph={models['softmax']}", "--num_runs=1", "--min_secs=0", "--frobnicate=1"], env
    )
    assert extra.returncode == 0
    assert parse_log(extra.stdout).unconsumed_flags == ("--frobnicate=1",)


def test_missing_graph_fails_like_the_tool(phone, tmp_path):
    proc = run_benchmark([f"--graph={tmp_path / 'nope.tflite'}"], phone())
    log = parse_log(proc.stdout, proc.stderr)
    assert proc.returncode == 1 and log.failed
    assert f"Failed to load model {tmp_path / 'nope.tflite'}" in log.error_lines


def test_launcher_script_and_help_look_official(phone):
    launcher = REPO / "android_assets" / "bin" / "virtual" / "benchmark_model"
    assert os.access(launcher, os.X_OK)
    proc = subprocess.run(
        [str(launcher), "--help"], env=phone(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1  # like the real tool, --help ends in "Benchmarking failed."
    assert "\t--output_filepath=\tstring" in proc.stderr
    assert "\t--gpu_precision_loss_allowed=true\tbool" in proc.stderr
    assert not is_compiled_model_tool(proc.stdout + proc.stderr)
