"""Generations of the TFLite GPU delegate: which softmax kernel each backend runs, and how.

Facts from the kernel sources (FACTS.md §2, tensorflow/tensorflow ``lite/delegates/gpu/...``
read at the commits named below), as data: one :class:`Generation` per delegate release line,
each naming, per backend, the :class:`SoftmaxKernel` it compiles. The virtual phone runs one
generation (``harness virtual start --delegate NAME``) and computes its SOFTMAX by the kernel's
mechanism (``harness.virtual.benchmark_model.gpu_kernels``); ``harness diagnose`` names the generation
and its remedies. Standard library only.

A real phone's generation is the TFLite runtime in the app (or the ``benchmark_model`` binary):
the harness cannot read it from the phone, so it is known only on virtual phones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import UsageError

__all__ = [
    "DEFAULT_GENERATION",
    "FP16_EXP_LIMIT",
    "FP32_EXP_LIMIT",
    "GENERATIONS",
    "Generation",
    "SoftmaxKernel",
    "generation",
]

FP16_EXP_LIMIT = math.log(65504.0)  # ~11.09: exp(x) overflows a 16-bit float past it
FP32_EXP_LIMIT = math.log(3.4028234663852886e38)  # ~88.72: exp(x) overflows float32 past it
_TF = "https://github.com/tensorflow/tensorflow/blob"


@dataclass(frozen=True)
class SoftmaxKernel:
    """One softmax kernel of the GPU delegate (channels axis only, beta = 1)."""

    name: str
    source: str  # file at a commit
    subtracts_max: bool
    # "mediump": the shader declares `precision mediump float` when precision loss is allowed,
    # so exp and the per-slice dot run in 16 bits on GPUs whose mediump is 16-bit; "float":
    # read as float, computed in float (FP16 only when the result is stored).
    exp_precision: str
    padding: str  # what happens to the padding lanes of the last 4-wide slice

    def overflows_past(self, fp16: bool, mediump_bits: int | None) -> float | None:
        """The largest softmax input this kernel survives (None: none, it subtracts the max)."""
        if self.subtracts_max:
            return None
        if self.exp_precision == "mediump" and fp16 and mediump_bits == 16:
            return FP16_EXP_LIMIT
        return FP32_EXP_LIMIT


GL_2019_SOFTMAX = SoftmaxKernel(
    "gl-softmax-2019",
    f"{_TF}/231f6ad3dcf2b1f305cd9b1c22a5b8f0357dacaf/"
    "tensorflow/lite/delegates/gpu/gl/kernels/softmax.cc",
    subtracts_max=False,
    exp_precision="mediump",
    padding="masked in the sum (mask uniform)",
)
CL_OLD_SOFTMAX = SoftmaxKernel(
    "cl-softmax-old",
    f"{_TF}/59e708c5c67d28dc2976e29433ae54f0fe791157/"
    "tensorflow/lite/delegates/gpu/cl/kernels/softmax.cc",
    subtracts_max=False,
    exp_precision="float",  # ReadAsFloatWHS, float sum: inf only past ~88.72
    padding="masked in the sum (mask argument)",
)
TASKS_SOFTMAX = SoftmaxKernel(
    "tasks-softmax",
    f"{_TF}/b7a458c183dbd14faa36c9ec89601db7de8a4618/"
    "tensorflow/lite/delegates/gpu/common/tasks/softmax.cc",
    subtracts_max=True,
    exp_precision="float",
    padding="three-pass (Mali, most GPUs): padded output lanes receive exp(0 - max)/sum until "
    "tensorflow PR 108244; real channels are right. Two-pass (Adreno 6xx+ on OpenCL): zeroed",
)
GL_CURRENT_SOFTMAX = SoftmaxKernel(
    "gl-softmax-current",
    f"{_TF}/9dbcf6d20ecf82c7da8ed59f5cc46a229bebb7a7/"
    "tensorflow/lite/delegates/gpu/gl/kernels/softmax.cc",
    subtracts_max=True,
    exp_precision="float",  # highp max, sum and exp
    padding="masked in the max and the sum",
)


@dataclass(frozen=True)
class Generation:
    """A GPU delegate release line: its backends and the softmax kernel each one runs."""

    name: str
    title: str
    versions: str  # the release range, as far as the sources establish it
    backends: tuple[str, ...]  # what the delegate can run on ("cl" tried first when both)
    softmax: tuple[tuple[str, SoftmaxKernel], ...]  # backend -> kernel
    reduction: str  # what is known about its SUM/MEAN accumulators
    remedies: tuple[str, ...]  # what the sources say fixes its softmax failure

    def kernel(self, backend: str) -> SoftmaxKernel | None:
        return dict(self.softmax).get(backend)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "versions": self.versions,
            "backends": list(self.backends),
            "softmax": {b: k.name for b, k in self.softmax},
            "sources": {b: k.source for b, k in self.softmax},
        }


_NO_REDUCTION_SOURCE = "not established: no source documents this generation's SUM/MEAN"
GENERATIONS: dict[str, Generation] = {
    g.name: g
    for g in (
        Generation(
            "gl-2019",
            "GPU delegate developer preview (OpenGL ES 3.1 compute shaders)",
            "January 2019 developer preview through the Status-era GL kernels (2019-2020); the "
            "exact last release is not established",
            ("gl",),
            (("gl", GL_2019_SOFTMAX),),
            _NO_REDUCTION_SOURCE,
            (
                "another head: sigmoid (sigmoid(z_fg - z_bg) is softmax's P(fg) exactly, no "
                "overflow) or logits with the threshold on the CPU",
                "FP32 (--gpu_precision_loss_allowed=false): highp exp, overflows only past ~88.7",
                "a newer TFLite runtime in the app: GPU delegate v2 runs the OpenCL kernel "
                "(float exp, safe to ~88.7), the current delegate subtracts the max",
            ),
        ),
        Generation(
            "cl-v2",
            "GPU delegate v2 with the first OpenCL backend (OpenGL kept as fallback)",
            "GPU delegate v2 (TfLiteGpuDelegateV2, 2019-2020) with cl/kernels/softmax.cc before "
            "the move to common/tasks; the exact range is not established",
            ("cl", "gl"),
            (("cl", CL_OLD_SOFTMAX), ("gl", GL_2019_SOFTMAX)),
            _NO_REDUCTION_SOURCE,
            (
                "--gpu_backend=cl (the default when OpenCL exists): float exp, safe to ~88.7",
                "another head: sigmoid or logits with the threshold on the CPU",
                "a newer TFLite runtime in the app: the current delegate subtracts the max",
            ),
        ),
        Generation(
            "current",
            "current GPU delegate (common/tasks kernels on OpenCL, max-subtracting GL shader)",
            "common/tasks/softmax.cc and the max-subtracting gl/kernels/softmax.cc, as of the "
            "commits named (TensorFlow 2.x, LiteRT)",
            ("cl", "gl"),
            (("cl", TASKS_SOFTMAX), ("gl", GL_CURRENT_SOFTMAX)),
            "common/tasks/reduce.cc accumulates in float4: a SUM past 65504 does not overflow in "
            "this kernel. LiteRT issue 9249 (SUM past 65504 -> NaN) is on the newer ML Drift "
            "backend, which no generation here models",
            (),
        ),
    )
}
DEFAULT_GENERATION = "current"


def generation(name: str) -> Generation:
    """The generation called ``name``; a usage error naming the known ones otherwise."""
    if name not in GENERATIONS:
        raise UsageError(
            f"unknown GPU delegate generation {name!r}; known: {', '.join(GENERATIONS)}"
        )
    return GENERATIONS[name]
