"""parse_log on captured samples of every benchmark_model log generation (tests/runner/data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.runner import GpuBackend, RunStats, UnsupportedOp, Verdict, parse_log

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(DATA.glob("*.txt"))


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_old_tf2_average_and_peak_memory_format():
    log = parse_log(sample("old_tf2_average.txt"))
    assert log.model_path == "/data/local/tmp/mobilenet_v1_1.0_224.tflite"
    assert log.model_size_mb == pytest.approx(16.9008)
    assert log.init_ms == pytest.approx(38.467)
    assert log.warmup == RunStats(7, 86546, 82233, 81896, 86546, 83235.1, 1491)
    assert log.inference.count == 50 and log.inference.avg == pytest.approx(79760.9)
    assert log.inference.p5 is None and log.inference.median is None
    assert log.old_timing_format
    assert (log.warmup_avg_us, log.init_us, log.inference_avg_us) == (83235.1, 38467, 79760.9)
    assert log.first_inference_us is None
    assert (log.mem_init_mb, log.mem_overall_mb) == (0.0, pytest.approx(12.8672))
    assert log.param("Num threads") == "4" and log.param("Allow fp16") == "0"
    assert log.verdict is Verdict.NONE and log.ok and not log.virtual


def test_newer_format_with_info_prefix_percentiles_and_memory():
    log = parse_log(sample("newer_percentiles.txt"))
    assert log.warmup.count == 44 and log.warmup.p95 == 12488
    inf = log.inference
    assert (inf.count, inf.first, inf.curr, inf.min, inf.max) == (100, 11107, 10988, 10791, 13402)
    assert (inf.avg, inf.std, inf.p5, inf.median, inf.p95) == (11148.7, 398, 10833, 11051, 11760)
    assert not inf.all_same
    assert log.phases[1].min_runs == 100 and log.phases[0].min_secs == 0.5
    assert log.init_us == 21914 and log.first_inference_us == 15236
    assert log.warmup_avg_us == 11389.4 and log.inference_avg_us == 11148.7
    assert not log.old_timing_format
    assert log.mem_init_mb == pytest.approx(4.21094)
    assert log.mem_overall_mb == pytest.approx(9.83203)
    assert log.peak_mem_mb == pytest.approx(14.1367) and log.vm_rss_mb == 21
    assert log.xnnpack_applied and log.verdict is Verdict.NONE
    # The default XNNPACK replacement is recorded but is not "the" delegate of the run.
    assert log.replacements[0].delegate == "TfLiteXNNPackDelegate"
    assert log.main_replacement.replaced == 187


def test_all_same_forms():
    log = parse_log(sample("all_same.txt"))
    assert log.warmup == RunStats(1, 37, 37, 37, 37, 37, 0, 37, 37, 37, all_same=True)
    assert log.inference == RunStats(10, 12, 12, 12, 12, 12, 0, 12, 12, 12, all_same=True)
    # FACTS.md spells the old form with a space before "(all same)".
    spaced = parse_log("count=4 curr=2000 (all same)\ncount=50 curr=1999 (all same)\n")
    assert spaced.inference.count == 50 and spaced.inference.avg == 1999
    assert spaced.inference.all_same and spaced.inference.std == 0


def test_scientific_notation():
    log = parse_log(sample("scientific_notation.txt"))
    assert log.inference.avg == pytest.approx(1.01013e6)
    assert log.inference_avg_us == pytest.approx(1.01013e6)
    assert log.warmup_avg_us == pytest.approx(1.10924e6)
    assert log.init_ms == pytest.approx(2123.46) and log.init_us == 2123456
    tiny = parse_log("count=2 first=1e+3 curr=2.5E3 min=1000 max=2500 avg=1.75e3 std=7.5e+02\n")
    assert tiny.warmup.first == 1000 and tiny.warmup.curr == 2500 and tiny.warmup.std == 750


def test_gpu_full_delegation_opencl():
    log = parse_log(sample("gpu_full_opencl.txt"))
    assert log.verdict is Verdict.FULL and log.delegate == "GPU" and log.delegate_kernels == 1
    assert (log.replaced_nodes, log.total_nodes, log.partitions) == (63, 63, 1)
    assert log.main_replacement.subgraph == 0
    assert log.gpu_delegate_created and log.gpu_backend is GpuBackend.OPENCL
    assert not log.cl_to_gl_fallback and not log.opencl_missing and not log.unsupported_ops
    assert log.param("Allow lower precision in gpu") == "1"
    assert log.ok and log.inference.median == 3401


def test_gpu_partial_with_unsupported_ops():
    log = parse_log(sample("gpu_partial_unsupported.txt"))
    assert log.verdict is Verdict.PARTIAL and log.delegate_kernels == 1
    assert log.unsupported_ops == (
        UnsupportedOp("ARG_MAX", "Operation is not supported."),
        UnsupportedOp("SOFTMAX", "Softmax.beta != 1 is not supported."),
    )
    assert (log.gpu_ops, log.cpu_ops) == (61, 2)
    assert (log.replaced_nodes, log.total_nodes, log.partitions) == (61, 63, 2)
    assert log.error_lines == ("Following operations are not supported by GPU delegate:",)
    assert log.ok


def test_gpu_failed():
    log = parse_log(sample("gpu_failed.txt"))
    assert log.verdict is Verdict.FAILED and log.delegate == "GPU"
    assert log.failed and not log.ok and log.inference is None
    assert "Failed to apply GPU delegate." in log.error_lines
    assert log.error_lines[-1] == "Benchmarking failed."


def test_cl_to_gl_fallback_when_libopencl_is_missing():
    log = parse_log(sample("cl_gl_fallback.txt"))
    assert log.opencl_missing and log.cl_to_gl_fallback
    assert log.gpu_backend is GpuBackend.OPENGL and log.verdict is Verdict.FULL and log.ok


def test_nnapi():
    log = parse_log(sample("nnapi.txt"))
    assert log.verdict is Verdict.FULL and log.delegate == "NNAPI"
    assert log.replaced_nodes == 31 and log.main_replacement.delegate == "TfLiteNnapiDelegate"
    assert log.param("NNAPI accelerators available") == (
        "qti-default,qti-dsp,qti-gpu,qti-hta,nnapi-reference"
    )
    assert not log.gpu_delegate_created and log.gpu_backend is None


def test_nnapi_not_applied_and_unavailable():
    log = parse_log(
        "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed"
        " by the delegate.\n"
    )
    assert log.verdict is Verdict.NOT_APPLIED and log.delegate == "NNAPI"
    gone = parse_log("WARN: NNAPI acceleration is unsupported on this platform.\n")
    assert gone.nnapi_unavailable and gone.verdict is Verdict.NONE
    assert gone.warning_lines == ("NNAPI acceleration is unsupported on this platform.",)


def test_op_profiling_tables():
    log = parse_log(sample("op_profiling.txt"))
    assert [r.name for r in log.op_profile] == [
        "Delegate/Convolution (NHWC, F32) IGEMM:0",
        "Delegate/Convolution (NHWC, F32) IGEMM:1",
        "Delegate/Convolution (NHWC, F32) GEMM:2",
        "Delegate/Softmax (NC, F32):3",
    ]
    first = log.op_profile[1]
    assert first.node_type == "Convolution (NHWC, F32) IGEMM"
    assert (first.first_ms, first.avg_ms, first.percent, first.cdf_percent) == (
        1.208,
        1.174,
        68.256,
        91.395,
    )
    assert first.times_called == 1 and first.start_ms is None
    summary = {row.node_type: row for row in log.op_summary}
    assert set(summary) == {
        "Convolution (NHWC, F32) IGEMM",
        "Convolution (NHWC, F32) GEMM",
        "Softmax (NC, F32)",
    }
    assert summary["Convolution (NHWC, F32) IGEMM"].count == 2
    assert summary["Convolution (NHWC, F32) IGEMM"].avg_ms == pytest.approx(1.572)
    # The initialization profile (ModifyGraphWithDelegate, AllocateTensors) is not an op row,
    # and its "Timings (microseconds): count=1" line is not a run.
    assert "AllocateTensors" not in {r.node_type for r in log.op_profile}
    assert len(log.stat_lines) == 2 and log.inference.count == 583


def test_op_profiling_old_format_with_start_column():
    rows = parse_log(sample("op_profiling_old_start_column.txt")).op_profile
    assert [(r.node_type, r.start_ms, r.first_ms, r.avg_ms) for r in rows] == [
        ("CONV_2D", 0.0, 0.412, 0.398),
        ("CONV_2D", 0.398, 1.208, 1.174),
        ("SOFTMAX", 1.572, 0.061, 0.057),
    ]
    assert rows[2].name == "[StatefulPartitionedCall:0]:2"


def test_benchmark_failure_during_runs():
    log = parse_log(sample("benchmark_failure.txt"))
    assert log.failed and not log.fatal and not log.ok
    assert log.warmup.count == 1 and log.inference is None and log.inference_avg_us is None
    assert "Node number 63 (TfLiteGpuDelegateV2) failed to invoke." in log.error_lines
    assert log.verdict is Verdict.FULL  # the delegate was applied; the run failed later


def test_input_size_mismatch_is_fatal():
    log = parse_log(sample("input_size_mismatch.txt"))
    assert log.fatal and log.failed
    assert log.error_lines == (
        "The size of /data/local/tmp/in.bin is 49152 bytes. It should be 196608 bytes.",
    )
    assert log.param("Input value files") == "input_1:/data/local/tmp/in.bin"


def test_apk_logcat_capture():
    log = parse_log(sample("apk_logcat.txt"))
    assert log.verdict is Verdict.PARTIAL and log.unsupported_ops == (
        UnsupportedOp("UNPACK", "Operation is not supported."),
    )
    assert (log.gpu_ops, log.cpu_ops, log.partitions) == (294, 2, 3)
    assert log.inference.count == 123 and log.inference_avg_us == 8178.2
    assert log.error_lines[0] == "Following operations are not supported by GPU delegate:"


def test_old_gpu_messages_without_verdict_lines():
    text = (
        "INFO: Created TensorFlow Lite delegate for GPU.\n"
        "ERROR: Next operations are not supported by GPU delegate:\n"
        "MAXIMUM: Operation is not supported.\n"
        "MEAN: Operation is not supported.\n"
        "First 0 operations will run on the GPU, and the remaining 81 on the CPU.\n"
    )
    log = parse_log(text)
    assert [u.op for u in log.unsupported_ops] == ["MAXIMUM", "MEAN"]
    assert (log.gpu_ops, log.cpu_ops) == (0, 81)
    assert log.verdict is Verdict.NOT_APPLIED
    replaced = parse_log(
        "Replacing 293 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions.\n"
    )
    assert replaced.verdict is Verdict.FULL and replaced.total_nodes is None
    assert replaced.replaced_nodes == 293


def test_stdout_and_stderr_are_both_read_and_crlf_is_fine():
    out = sample("gpu_partial_unsupported.txt")
    stdout = "\r\n".join(
        line
        for line in out.splitlines()
        if "GPU delegate:" not in line
        and not line.startswith(("ARG_MAX", "SOFTMAX", "61 operations"))
    )
    stderr = (
        "ERROR: Following operations are not supported by GPU delegate:\r\n"
        "ARG_MAX: Operation is not supported.\r\n"
        "61 operations will run on the GPU, and the remaining 2 operations will run on the"
        " CPU.\r\n"
    )
    log = parse_log(stdout, stderr)
    assert log.unsupported_ops == (UnsupportedOp("ARG_MAX", "Operation is not supported."),)
    assert log.verdict is Verdict.PARTIAL and log.inference.count == 20


def test_garbage_and_non_utf8_junk_are_skipped():
    junk = b"\xff\xfe\x00garbage\xc3(\n".decode("utf-8", errors="replace")
    text = junk + "count=abc\ncount=-3 first=1\n" + sample("newer_percentiles.txt") + "\x00\x1b[0m"
    log = parse_log(text, b"\x80\x81 ERROR: Benchmarking failed.".decode("latin-1"))
    assert log.inference.count == 100 and log.warmup.count == 44
    assert log.failed  # the stderr line still counts
    assert parse_log(b"INFO: count=3 curr=5(all same)\n").warmup.count == 3  # bytes accepted


def test_unconsumed_flags_are_reported():
    log = parse_log(sample("compiled_model_log.txt"))
    assert "--output_filepath=/data/local/tmp/out.bin" in log.unconsumed_flags


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_parses_without_raising(path):
    parse_log(path.read_text(encoding="utf-8"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000), st.text(max_size=500))
def test_parse_log_never_raises_on_random_text(stdout, stderr):
    parse_log(stdout, stderr)


_LINES = [line for path in SAMPLES for line in path.read_text(encoding="utf-8").splitlines()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_LINES), max_size=60),
    st.lists(st.tuples(st.integers(0, 400), st.text(max_size=8)), max_size=12),
)
def test_parse_log_never_raises_on_mutated_samples(lines, edits):
    text = "\n".join(lines)
    for position, insert in edits:
        position = min(position, len(text))
        text = text[:position] + insert + text[position + len(insert) // 2 :]
    parse_log(text)
