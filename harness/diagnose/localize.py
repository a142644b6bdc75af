"""Localization: which op's output first departs from the desktop, on this phone and delegate.

For a failing cell, probe models (:mod:`harness.diagnose.probe`) exposing every intermediate
tensor are run on the phone with the cell's delegate (through the bench's own staging and
accuracy pass: hash-cached pushes, one benchmark_model run per image, one pull) and on the
desktop with LiteRT. Tensors are compared in execution order; the first whose error passes the
tolerance names the culprit op, shown with the errors of the tensors it read and of the ones
computed from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from harness.bench.measure import CellFailed, Settings, accuracy_pass
from harness.bench.plan import Target, input_key
from harness.bench.stage import local_inputs, stage
from harness.convert.reference import EvalSet, preprocess
from harness.convert.tflite_model import TfliteModel, read_tflite
from harness.devices.device import Device
from harness.devices.info import DeviceInfo
from harness.diagnose.probe import Probe, plan_probes, write_probe
from harness.errors import HarnessError, ModelError
from harness.runner import Delegate

__all__ = ["DEFAULT_TOLERANCE", "Localization", "TensorError", "localize", "tensor_error"]

# A tensor diverges when it holds non-finite values the desktop does not have, or when its
# largest error passes this share of the tensor's largest magnitude. FP16 rounding stays near
# 5e-4 of it; a documented GPU miscompute is well above.
DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class TensorError:
    tensor: int
    name: str
    op: str  # the producing op's type
    op_index: int
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel: float  # max_abs / max |desktop value| (mismatch share for integer masks)
    nonfinite: int  # NaN/Inf on the phone where the desktop value is finite
    diverges: bool

    def to_dict(self) -> dict:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data

    def brief(self) -> str:
        bad = f", {self.nonfinite} NaN/Inf" if self.nonfinite else ""
        return f"{self.op}#{self.op_index} {self.name}: rel {self.rel:.2g}{bad}"


@dataclass
class Localization:
    variant: str
    delegate: str
    images: tuple[int, ...]  # eval-set indices the probes ran on
    tolerance: float
    culprit: TensorError | None = None
    before: list[TensorError] = field(default_factory=list)
    after: list[TensorError] = field(default_factory=list)
    tensors: list[TensorError] = field(default_factory=list)  # every compared tensor, in order
    probes: int = 0
    probe_bytes: int = 0  # output bytes pulled per image, summed over probes
    channel_sums: tuple[float, float] | None = None  # culprit SOFTMAX on the phone: min, max
    error: str = ""  # the probe could not run

    @property
    def largest(self) -> TensorError | None:
        return max(self.tensors, key=lambda t: (t.nonfinite, t.rel), default=None)

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "delegate": self.delegate,
            "images": list(self.images),
            "tolerance": self.tolerance,
            "culprit": self.culprit.to_dict() if self.culprit else None,
            "before": [t.to_dict() for t in self.before],
            "after": [t.to_dict() for t in self.after],
            "tensors_compared": len(self.tensors),
            "diverging": sum(t.diverges for t in self.tensors),
            "probes": self.probes,
            "probe_bytes_per_image": self.probe_bytes,
            "channel_sums": list(self.channel_sums) if self.channel_sums else None,
            "error": self.error or None,
        }


def _values(a: np.ndarray, model: TfliteModel, index: int) -> np.ndarray:
    q = model.tensors[index].quantization
    if q is not None and a.dtype.kind in "iu":
        return (a.astype(np.float64) - q.zero_point) * q.scale
    return a.astype(np.float64)


def tensor_error(
    model: TfliteModel, index: int, device: np.ndarray, desktop: np.ndarray, tolerance: float
) -> TensorError:
    """How far the phone's values of tensor ``index`` are from the desktop's."""
    tensor = model.tensors[index]
    producer = model.producer(index)
    d, r = _values(device, model, index), _values(desktop, model, index)
    ref_ok = np.isfinite(r)
    nonfinite = int(np.count_nonzero(~np.isfinite(d) & ref_ok))
    both = ref_ok & np.isfinite(d)
    diff = np.abs(d - r)[both]
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    if tensor.dtype in ("int32", "int64", "bool", "uint8") and tensor.quantization is None:
        rel = float(np.mean(d != r)) if d.size else 0.0  # a mask or index: share that differs
    else:
        scale = float(np.abs(r[ref_ok]).max()) if ref_ok.any() else 0.0
        rel = max_abs / max(scale, 1e-6)
    return TensorError(
        index,
        tensor.name,
        producer.name if producer else "INPUT",
        producer.index if producer else -1,
        tuple(tensor.shape),
        max_abs,
        mean_abs,
        rel,
        nonfinite,
        nonfinite > 0 or rel > tolerance,
    )


def _desktop(probe: Probe, x: np.ndarray) -> dict[int, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    from harness.convert._native import native_output_silenced

    try:
        with native_output_silenced():
            interp = Interpreter(model_path=str(probe.path))
            interp.allocate_tensors()
        index = interp.get_input_details()[0]["index"]
        outs: dict[int, list[np.ndarray]] = {t: [] for t in probe.outputs}
        for sample in x:
            interp.set_tensor(index, sample[None])
            interp.invoke()
            for t in probe.outputs:
                outs[t].append(np.array(interp.get_tensor(t)))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"LiteRT cannot run the probe {probe.path.name}: {first}") from exc
    return {t: np.stack(v) for t, v in outs.items()}


def _split(raw: np.ndarray, model: TfliteModel, probe: Probe) -> dict[int, np.ndarray]:
    out, offset = {}, 0
    for t, size in zip(probe.outputs, probe.sizes(model), strict=True):
        tensor = model.tensors[t]
        chunk = np.ascontiguousarray(raw[:, offset : offset + size])
        out[t] = chunk.view(np.dtype(tensor.dtype)).reshape((raw.shape[0], *tensor.shape))
        offset += size
    return out


def _probe_target(target: Target, probe: Probe, model: TfliteModel) -> Target:
    return Target(
        f"{target.variant_id}-probe",
        probe.sha256,
        probe.path,
        target.input,
        target.output,
        probe.sizes(model),
        target.model,
        {"_output_order": list(probe.outputs)},
    )


def localize(
    device: Device,
    info: DeviceInfo,
    target: Target,
    delegate: Delegate,
    eval_set: EvalSet,
    images: list[int],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    settings: Settings | None = None,
) -> Localization:
    """Run probes of ``target`` on the phone (``delegate``) and the desktop; name the culprit."""
    settings = settings or Settings()
    loc = Localization(target.variant_id, delegate.value, tuple(images), tolerance)
    model = read_tflite(target.path, verify=False)
    masks = None if eval_set.masks is None else eval_set.masks[images]
    subset = EvalSet(f"{eval_set.name}{list(images)}", eval_set.images[images], masks)
    key = input_key(subset.fingerprint, target.input)
    inputs = {key: local_inputs(key, subset.images, target)}
    x = preprocess(subset.images, target.input)
    errors: dict[int, TensorError] = {}
    device_values: dict[int, np.ndarray] = {}
    for chunk in plan_probes(model):
        probe = write_probe(target.path, chunk)
        probe_target = _probe_target(target, probe, model)
        loc.probes += 1
        loc.probe_bytes += probe_target.sample_bytes
        try:
            staged = stage(device, info, [probe_target], subset.fingerprint, inputs)
            raw, _, _ = accuracy_pass(
                device, staged, probe_target, delegate, settings, f"probe-{probe.sha256[:8]}"
            )
        except CellFailed as exc:
            loc.error = f"probe failed on the phone: {exc.reason}"
            return loc
        except HarnessError as exc:
            loc.error = f"probe failed on the phone: {exc}"
            return loc
        phone = _split(raw, model, probe)
        desk = _desktop(probe, x)
        for t in probe.outputs:
            errors[t] = tensor_error(model, t, phone[t], desk[t], tolerance)
            device_values[t] = phone[t]
        order = sorted(errors.values(), key=lambda e: (e.op_index, e.tensor))
        first = next((e for e in order if e.diverges), None)
        if first is not None and first is not order[-1]:
            break  # the culprit and what follows it are in: no need for later probes
    loc.tensors = sorted(errors.values(), key=lambda e: (e.op_index, e.tensor))
    loc.culprit = next((e for e in loc.tensors if e.diverges), None)
    if loc.culprit is not None:
        _neighbours(loc, model, errors, device_values)
    return loc


def _neighbours(
    loc: Localization,
    model: TfliteModel,
    errors: dict[int, TensorError],
    values: dict[int, np.ndarray],
) -> None:
    culprit = loc.culprit
    op = model.ops[culprit.op_index]
    loc.before = [errors[t] for t in op.inputs if t in errors]
    if not loc.before:  # fed by the model input (identical bytes) or tensors not exposed
        earlier = [e for e in loc.tensors if e.op_index < culprit.op_index]
        loc.before = earlier[-1:]
    consumers = [o for o in model.ops if any(t in o.inputs for t in op.outputs)]
    after = [errors[t] for o in consumers for t in o.outputs if t in errors]
    if not after:
        later = [e for e in loc.tensors if e.op_index > culprit.op_index]
        after = later[:1]
    loc.after = after[:3]
    if op.name == "SOFTMAX" and culprit.tensor in values:
        sums = values[culprit.tensor].astype(np.float64).sum(axis=-1)
        finite = sums[np.isfinite(sums)]
        if finite.size:
            loc.channel_sums = (float(finite.min()), float(finite.max()))
