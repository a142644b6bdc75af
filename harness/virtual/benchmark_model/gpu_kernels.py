"""The virtual phone's GPU softmax, computed the way each delegate generation's kernel does.

:mod:`harness.tflite.gpu_delegates` says which kernel a generation runs on a backend and what
the kernel does (max subtracted or not, mediump or float exp); this module turns that into
arithmetic. Kernels that subtract the max compute softmax right up to FP16 rounding, so the
plain hook of :mod:`.gpu_emulation` stands for them (:func:`softmax_hook` returns None). The
kernels without max subtraction (old GL, old CL) are computed step by step, on PHWC4 slices:

1. ``e = exp(x)`` per 4-wide slice, padding lanes holding 0; in float16 when the kernel's exp is
   mediump, precision loss is allowed and the GPU's mediump is 16-bit (Mali), else in float32;
2. each slice's ``dot(mask, e)`` at the same precision (the padding lanes masked out);
3. ``sum`` of the slice dots in float32 (``highp float sum`` / ``float sum``);
4. ``exp(x) / sum``, stored in float16 at FP16 precision.

So a 16-bit exp is inf once x > ln(65504) ~ 11.09 (that channel inf/inf = NaN, the others
finite/inf = 0), and a float32 one once x > ~88.72. Nothing is forced: the inf and NaN come out
of numpy's float16/float32 arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from harness.tflite.gpu_delegates import GENERATIONS, SoftmaxKernel

__all__ = ["SLICE", "no_max_softmax", "softmax_hook"]

SLICE = 4  # the GPU delegate packs channels in 4-wide slices (PHWC4)
Hook = Callable[[Sequence[np.ndarray], object, type], np.ndarray]


def _slice_dot(e: np.ndarray, mask: np.ndarray, dtype: type) -> np.ndarray:
    """``dot(mask, e)`` over the last axis (4 lanes), each step rounded to ``dtype``."""
    acc = np.zeros(e.shape[:-1], dtype)
    for lane in range(e.shape[-1]):
        acc = (acc + (e[..., lane] * mask[lane]).astype(dtype)).astype(dtype)
    return acc


def no_max_softmax(
    x: np.ndarray, *, fp16: bool, mediump16: bool, kernel: SoftmaxKernel
) -> np.ndarray:
    """Channel softmax of ``x`` (last axis) by a kernel that does not subtract the max."""
    low = kernel.exp_precision == "mediump" and fp16 and mediump16
    exp_dtype = np.float16 if low else np.float32
    stored = np.float16 if fp16 else np.float32
    x = np.asarray(x, np.float32).astype(stored)  # the tensor as the GPU holds it
    channels = x.shape[-1]
    pad = (-channels) % SLICE
    lanes = np.concatenate([x, np.zeros((*x.shape[:-1], pad), x.dtype)], axis=-1)
    lanes = lanes.reshape(*x.shape[:-1], -1, SLICE)
    mask = np.ones(SLICE, exp_dtype)
    if pad:
        mask[SLICE - pad :] = 0
    with np.errstate(all="ignore"):  # the overflow is the point
        e = np.exp(lanes.astype(exp_dtype))
        last = _slice_dot(e[..., -1, :], mask, exp_dtype)
        full = np.ones(SLICE, exp_dtype)
        dots = [_slice_dot(e[..., s, :], full, exp_dtype) for s in range(e.shape[-2] - 1)]
        total = np.zeros(x.shape[:-1], np.float32)
        for dot in (*dots, last):
            total = total + dot.astype(np.float32)
        out = e.astype(np.float32) / total[..., None, None]
    out = out.reshape(*x.shape[:-1], -1)[..., :channels]
    with np.errstate(over="ignore"):
        return out.astype(stored)


@functools.cache
def _hook(kernel: SoftmaxKernel, mediump16: bool) -> Hook:
    def hook(ins: Sequence[np.ndarray], op, dt: type) -> np.ndarray:
        beta = float(getattr(op, "options", {}).get("beta", 1.0))  # the GPU takes beta == 1 only
        x = np.asarray(ins[0], np.float32) * np.float32(beta)
        return no_max_softmax(x, fp16=dt is np.float16, mediump16=mediump16, kernel=kernel)

    hook.__name__ = f"softmax[{kernel.name}]"
    return hook


def softmax_hook(generation: str, backend: str, mediump_bits: int | None) -> Hook | None:
    """The SOFTMAX hook of ``generation`` on ``backend``; None where the kernel subtracts the
    max (the plain FP16/FP32 recomputation stands for it) or the backend has no GPU kernel."""
    gen = GENERATIONS.get(generation)
    kernel = gen.kernel(backend) if gen is not None else None
    if kernel is None or kernel.subtracts_max:
        return None
    return _hook(kernel, mediump_bits == 16)
