"""The host-side caches recover from damaged entries (issue 13): a truncated reference
``.npz`` is recomputed, a truncated or altered preprocessed input is written again."""

from __future__ import annotations

from harness.bench.plan import eval_images, input_key, resolve_targets
from harness.bench.stage import local_inputs
from harness.convert.reference import EvalSet, reference_outputs


def _target_and_set(bench_model):
    _, targets = resolve_targets(str(bench_model), "sigmoid-fp32")
    name, images, masks = eval_images("synthetic", 2, targets[0])
    return targets[0], EvalSet(name, images, masks)


def test_truncated_reference_cache_entry_is_recomputed(bench_model, tmp_path):
    target, eval_set = _target_and_set(bench_model)
    first = reference_outputs(
        target.path, eval_set, target.input, target.output, cache_dir=tmp_path
    )
    (entry,) = tmp_path.glob("*.npz")
    good = entry.read_bytes()
    assert reference_outputs(
        target.path, eval_set, target.input, target.output, cache_dir=tmp_path
    ).cached
    for damaged in (good[: len(good) // 2], good[:10], b""):
        entry.write_bytes(damaged)
        again = reference_outputs(
            target.path, eval_set, target.input, target.output, cache_dir=tmp_path
        )
        assert not again.cached and (again.raw == first.raw).all()
        assert entry.read_bytes() == good  # written again, whole


def test_damaged_cached_input_is_written_again(bench_model, harness_home):
    target, eval_set = _target_and_set(bench_model)
    key = input_key(eval_set.fingerprint, target.input)
    files = local_inputs(key, eval_set.images, target)
    good = [f.read_bytes() for f in files]
    assert all(f.is_relative_to(harness_home) for f in files)
    files[0].write_bytes(good[0][: len(good[0]) // 2])  # truncated
    files[1].write_bytes(bytes(len(good[1])))  # same size, other bytes
    assert local_inputs(key, eval_set.images, target) == files
    assert [f.read_bytes() for f in files] == good
