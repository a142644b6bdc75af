"""The cell model (harness/cell.py): typed values that keep what they do not name, None for
not measured, and one judge with one vocabulary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cell import (
    Accuracy,
    Cell,
    CellKey,
    Delegation,
    DeviceId,
    Fidelity,
    Latency,
    Status,
    Verdict,
    judge,
    value_signature,
)
from harness.devices.identity import UNKNOWN_SERVER
from harness.runner.flags import DEFAULT_DELEGATE, Delegate, delegate_label, is_cpu_delegate

LATENCY = {
    "avg_ms": 2.5,
    "p95_ms": None,  # not measured: stays null
    "runner": "apk",
    "invocation_avg_ms": [2.4, 2.6],
    "ci95_ms": [2.41, 2.59],  # a key another part of the harness adds
    "cold_init_ms": 40.0,
    "sustained": {"series_ms": [2.5, 2.6]},
}
ACCURACY = {
    "n": 4,
    "vs_reference": {"iou": 0.99, "nan": 0, "inf": 0, "worst": [3, 1], "ssim": 0.9},
    "vs_float": None,
    "vs_gt": {"iou": 0.9, "iou_full_res": 0.88},
    "signature": "ok",
    "op_profile": [{"op": "CONV_2D", "ms": 1.0}],
}
DELEGATION = {"verdict": "partial", "unsupported_ops": [["ARG_MAX", "x"]], "virtual": True}


@pytest.mark.parametrize(
    ("kind", "data"), [(Latency, LATENCY), (Accuracy, ACCURACY), (Delegation, DELEGATION)]
)
def test_values_round_trip_every_key_they_do_not_name(kind, data):
    value = kind.from_json(json.loads(json.dumps(data)))
    assert value.to_json() == data
    assert kind.from_json(value.to_json()) == value


def test_typed_fields_read_numbers_and_leave_the_rest_as_stored():
    latency = Latency.from_json({"avg_ms": 3, "std_ms": "fast", "min_ms": float("nan")})
    assert latency.avg_ms == 3.0 and latency.std_ms is None and latency.min_ms is None
    assert latency.extra["std_ms"] == "fast"  # written back as it was, never as 0
    assert Latency.from_json({}).avg_ms is None and Latency.from_json({}).to_json() == {}
    assert Latency.from_json({}).timed_by == "shell"  # stored before the APK runner existed
    accuracy = Accuracy.from_json(ACCURACY)
    assert accuracy.reference.worst == (3, 1) and accuracy.gt.iou_full_res == 0.88
    assert accuracy.reference.nonfinite == 0 and Fidelity().nonfinite is None
    assert Accuracy.from_json("garbage") == Accuracy()


def _cell(status=Status.MEASURED, reason="", accuracy=None, delegation=None, delegate="gpu"):
    return Cell(
        "r",
        DeviceId("127.0.0.1:5037", "emulator-5554"),
        "sha",
        "softmax-fp32",
        delegate,
        status=status,
        reason=reason,
        accuracy=Accuracy.from_json(accuracy or {}),
        delegation=Delegation.from_json(delegation or {}),
    )


def _ref(**kw):
    base = {"iou": 0.99, "max_abs": 0.01, "nan": 0, "inf": 0, "constant": False,
            "inverted": False, "sum_to_one_err": None}  # fmt: skip
    return {**base, **kw}


@pytest.mark.parametrize(
    ("ref", "verdict"),
    [
        (_ref(), Verdict.CORRECT),
        (_ref(nan=3), Verdict.NAN),
        (_ref(inf=1, iou=1.0), Verdict.NAN),
        (_ref(constant=True, iou=0.2), Verdict.CONSTANT),
        (_ref(inverted=True, iou=0.1), Verdict.INVERTED),
        (_ref(sum_to_one_err=0.5), Verdict.SUM_NOT_ONE),
        (_ref(iou=0.5), Verdict.WRONG),
        (_ref(max_abs=0.3), Verdict.WRONG),
    ],
)
def test_value_signature(ref, verdict):
    assert value_signature(Fidelity.from_json(ref)) is verdict
    # A cell without a stored signature is judged from its values; with one, by it.
    assert judge(_cell(accuracy={"vs_reference": ref})).verdict is verdict
    stored = {"vs_reference": ref, "signature": verdict.value}
    assert judge(_cell(accuracy=stored)).verdict is verdict


def test_judge_names_measured_failed_correct_and_wrong():
    failed = judge(_cell(Status.FAILED, "benchmark_model crashed (SIGSEGV, exit 139)"))
    assert failed.verdict is Verdict.FAILED and not failed.measured and failed.failing
    assert failed.detail == "failed: benchmark_model crashed (SIGSEGV, exit 139)"
    dead = judge(_cell(Status.FAILED, "delegate failed: TfLiteGpuDelegate Init: no GL"))
    assert dead.verdict is Verdict.DELEGATE_FAILED and not dead.measured
    partial = {"verdict": "partial", "unsupported_ops": [["ARG_MAX", "x"]]}
    ok = {"vs_reference": _ref(), "signature": "ok"}
    split = judge(_cell(accuracy=ok, delegation=partial))
    assert split.verdict is Verdict.PARTIAL and split.correct and not split.failing
    assert judge(_cell(accuracy=ok, delegation=partial, delegate="cpu")).verdict is Verdict.CORRECT
    nan = judge(_cell(accuracy={**ok, "signature": "nan"}))
    assert nan.values_wrong and nan.detail == "output nan vs desktop reference (IoU 0.990)"
    assert judge(_cell(accuracy=ok), raw_nonfinite=5).verdict is Verdict.NAN
    assert judge(_cell(accuracy={**ok, "signature": "new-kind"})).verdict is Verdict.WRONG
    # "ok" is one word: the store's status value for measured, the judge's for correct.
    assert Status.MEASURED.value == Verdict.CORRECT.value == "ok"
    assert _cell().measured and _cell().outcome.verdict is Verdict.CORRECT


def test_device_identity_includes_the_server():
    a = DeviceId("10.0.0.1:5037", "emulator-5554")
    b = DeviceId("10.0.0.2:5037", "emulator-5554")
    legacy = DeviceId(UNKNOWN_SERVER, "emulator-5554")
    assert a != b and not a.matches(b) and legacy.matches(a) and a.matches(legacy)
    assert CellKey(a, "s", "cpu") != CellKey(b, "s", "cpu")
    assert CellKey(legacy, "s", "cpu").same_cell(CellKey(a, "s", "cpu"))
    assert str(a) == "emulator-5554@10.0.0.1:5037" and DeviceId.from_json(a.to_json()) == a
    assert DeviceId.from_json("emulator-5554") == legacy  # an old run's plan


def test_delegate_owns_its_facts():
    assert DEFAULT_DELEGATE is Delegate.GPU and Delegate.GPU.label == "GPU FP16"
    assert [d.value for d in Delegate if d.is_cpu] == ["cpu", "cpu1"]
    assert [d.value for d in Delegate if d.has_delegation_verdict] == [
        "gpu", "gpu-fp32", "gpu-cl", "gpu-gl", "nnapi"
    ]  # fmt: skip
    assert Delegate.GPU_CL.gpu_backend == "cl" and Delegate.GPU_CL.label == "GPU FP16 (OpenCL)"
    assert Delegate.CPU.color and Delegate.lookup("GPU-FP32") is Delegate.GPU_FP32
    assert Delegate.lookup("hexagon") is None and delegate_label("hexagon") == "hexagon"
    assert is_cpu_delegate("cpu1") and not is_cpu_delegate("nnapi")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),  # fmt: skip
    max_leaves=8,
)


def _documents(kind) -> st.SearchStrategy[dict]:
    """JSON objects mixing the type's own keys (any value, well-formed or not) and others."""
    from dataclasses import fields

    names = [f.name for f in fields(kind) if f.name != "extra"] + ["other", "ci95_ms"]
    return st.dictionaries(st.sampled_from(names), _JSON, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_stored_json_is_written_back_as_it_was(data):
    for kind in (Latency, Delegation, Accuracy, Fidelity):
        document = data.draw(_documents(kind))
        assert kind.from_json(document).to_json() == document
