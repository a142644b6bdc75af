"""The virtual phone's emulated GPU kernel cache: cold init compiles (an emulated wait) and
serializes, warm init loads the serialized kernels."""

from __future__ import annotations

from harness.runner import BenchmarkInvocation, parse_log
from harness.virtual.benchmark_model.kernel_cache import cache_file

from .conftest import run_benchmark


def test_cold_then_warm_init(models, phone, tmp_path):
    env = phone(emulation={"gpu_compile_ms_per_node": 50})
    cache = tmp_path / "kernels"
    cache.mkdir()
    inv = BenchmarkInvocation(str(models["softmax"]), "gpu", runs=1, warmup_runs=0,
                              delegate_serialize_dir=str(cache), delegate_serialize_token="tok")  # fmt: skip
    cold = run_benchmark(inv.flags(), env)
    assert cold.returncode == 0, cold.stderr
    assert "Compiling 3 GPU kernels (emulated: 150 ms" in cold.stderr
    # The emulated compile is a wait inside the measured init (a lower bound, not a timing).
    assert parse_log(cold.stdout, cold.stderr).init_ms >= 150
    path = cache_file(str(cache), "tok", models["softmax"].read_bytes())
    assert path.is_file()
    warm = run_benchmark(inv.flags(), env)
    assert warm.returncode == 0 and "Loaded serialized GPU kernels" in warm.stderr
    assert "Compiling" not in warm.stderr
    # Without serialize flags every init is cold.
    plain = BenchmarkInvocation(str(models["softmax"]), "gpu", runs=1, warmup_runs=0)
    again = run_benchmark(plain.flags(), env)
    assert "Compiling 3 GPU kernels" in again.stderr
