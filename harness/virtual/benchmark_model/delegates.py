"""The virtual phone's delegate stack as ``benchmark_model`` meets it: which GPU backends and
NNAPI the profile has (``.harness/virtual.json``, minus faults such as ``opencl-missing``), which
delegate a run's flags get, and applying it: the official tool's log lines, its verdict, and its
failures (:class:`~harness.virtual.benchmark_model.errors.Failed`)."""

from __future__ import annotations

from harness.tflite.gpu_delegates import DEFAULT_GENERATION, GENERATIONS, Generation
from harness.virtual.benchmark_model import flags as bm_flags
from harness.virtual.benchmark_model.errors import Failed
from harness.virtual.benchmark_model.gpu_emulation import (
    Emulation,
    GpuPlan,
    plan_gpu,
    removed_backends,
)
from harness.virtual.benchmark_model.stats import Out
from harness.virtual.benchmark_model.tflite_graph import Graph

GPU_NAME = "TfLiteGpuDelegateV2"
NNAPI_NAME = "TfLiteNnapiDelegate"
NO_OPENCL = (
    'Can not open OpenCL library on this device - dlopen failed: library "libOpenCL.so" not found'
)


class DelegateStack:
    """The phone's GPU and NNAPI stack (its profile config) for one run's flags."""

    def __init__(self, params: bm_flags.Params, config: dict, out: Out) -> None:
        self.p, self.config, self.out = params, config, out

    def nnapi_exists(self) -> bool:
        return bool(self.config.get("nnapi")) or "nnapi" in self.config.get("gpu_backends", [])

    def gpu_backends(self) -> list[str]:
        """Backends the phone's GPU stack has (profile, minus faults such as opencl-missing)
        that this delegate generation can use (the 2019 delegate: OpenGL only)."""
        gone = removed_backends(self.faults())  # e.g. opencl-missing: no libOpenCL.so
        usable = self.generation().backends
        return [
            b
            for b in self.config.get("gpu_backends", ["cl", "gl"])
            if b not in gone and b in usable
        ]

    def generation(self) -> Generation:
        name = self.config.get("gpu_delegate", DEFAULT_GENERATION)
        return GENERATIONS.get(str(name), GENERATIONS[DEFAULT_GENERATION])

    def mediump_bits(self) -> int | None:
        bits = self.config.get("mediump_bits")
        return bits if isinstance(bits, int) else None

    def faults(self) -> tuple[str, ...]:
        faults = self.config.get("faults", [])
        return tuple(str(f) for f in faults) if isinstance(faults, list) else ()

    def choose(self, graph: Graph) -> tuple[str, Emulation | None, GpuPlan | None]:
        """The delegate the flags ask for and the phone has: (accelerator: "gpu", "nnapi" or
        "" for CPU, its numerics emulation, the GPU partition plan)."""
        p = self.p
        if p["use_gpu"]:
            self.out.runtime("Created TensorFlow Lite delegate for GPU.")
            self.out.info("GPU delegate created.")
            plan = plan_gpu(
                graph,
                enable_quant=p["gpu_experimental_enable_quant"],
                max_partitions=max(1, p["max_delegated_partitions"]),
            )
            precision = "fp16" if p["gpu_precision_loss_allowed"] else "fp32"
            backend = self.resolve_backend() or ""
            emulation = Emulation(
                precision,
                backend,
                frozenset(plan.delegated),
                self.generation().name,
                self.mediump_bits(),
            )
            return "gpu", emulation, plan
        if p["use_nnapi"]:
            if not self.nnapi_exists():
                self.out.warn("NNAPI acceleration is unsupported on this platform.")
                return "", None, None
            self.out.runtime("Created TensorFlow Lite delegate for NNAPI.")
            self.out.info("NNAPI delegate created.")
            precision = "fp16" if p["nnapi_allow_fp16"] else "fp32"
            everything = frozenset(op.index for op in graph.ops)
            return "nnapi", Emulation(precision, "nnapi", everything), None
        return "", None, None

    def resolve_backend(self) -> str | None:
        wanted, have = self.p["gpu_backend"], self.gpu_backends()
        if wanted in ("cl", "gl"):
            return wanted if wanted in have else None
        return "cl" if "cl" in have else ("gl" if "gl" in have else None)

    def apply_gpu(self, plan: GpuPlan, model_data: bytes = b"") -> None:
        out, total = self.out, plan.total
        if plan.unsupported:
            gpu = len(plan.delegated)
            tail = (
                f"{gpu} operations will run on the GPU, and the remaining {total - gpu}"
                if gpu
                else f"No operations will run on the GPU, and all {total}"
            )
            out.runtime(
                "Following operations are not supported by GPU delegate:\n"
                + "\n".join(plan.unsupported)
                + f"\n{tail} operations will run on the CPU.",
                "ERROR",
            )
        backend = self.resolve_backend()
        if plan.delegated:
            if backend == "cl":
                out.runtime("Loaded OpenCL library with dlopen.")
            out.runtime(
                f"Replacing {len(plan.delegated)} out of {total} node(s) with delegate "
                f"({GPU_NAME}) node, yielding {plan.partitions} partitions for subgraph 0.",
                "VERBOSE",
            )
            if backend is None:
                self._gpu_init_failure(total)
            tried_cl = "cl" in self.generation().backends  # the 2019 delegate had GL only
            if backend == "gl" and self.p["gpu_backend"] not in ("cl", "gl") and tried_cl:
                out.runtime(NO_OPENCL, "ERROR")
                out.runtime("Falling back to OpenGL", "ERROR")
            out.runtime(f"Initialized {'OpenCL' if backend == 'cl' else 'OpenGL'}-based API.")
            from harness.virtual.benchmark_model import kernel_cache  # emulated compile/cache

            kernel_cache.init_kernels(self.p, self.config, model_data, plan.delegated, out)
        out.runtime(f"Created {1 if plan.delegated else 0} GPU delegate kernels.")
        self._verdict("GPU", plan.full, 1 if plan.delegated else 0)

    def _gpu_init_failure(self, total: int) -> None:
        wanted, generation = self.p["gpu_backend"], self.generation()
        if wanted == "cl" and "cl" not in generation.backends:
            reason = f"this GPU delegate ({generation.name}) has no OpenCL backend"
        elif wanted != "gl" and "cl" not in self.gpu_backends():
            reason = NO_OPENCL
        else:
            reason = "OpenGL ES is not available on this virtual phone"
        self.out.runtime(f"TfLiteGpuDelegate Init: {reason}", "ERROR")
        self.out.runtime("Created 0 GPU delegate kernels.")
        self.out.runtime("TfLiteGpuDelegate Prepare: delegate is not initialized", "ERROR")
        self.out.runtime(f"Node number {total} ({GPU_NAME}) failed to prepare.", "ERROR")
        self.out.runtime(
            "Restored original execution plan after delegate application failure.", "ERROR"
        )
        raise Failed("Failed to apply GPU delegate.")

    def apply_nnapi(self, graph: Graph) -> None:
        total = len(graph.ops)
        self.out.runtime(
            f"Replacing {total} out of {total} node(s) with delegate ({NNAPI_NAME})"
            " node, yielding 1 partitions for subgraph 0.",
            "VERBOSE",
        )
        self._verdict("NNAPI", total > 0, 1 if total else 0)

    def _verdict(self, name: str, full: bool, kernels: int) -> None:
        if self.p["require_full_delegation"] and not full:
            raise Failed("Disallowed CPU fallback detected.")
        if full:
            self.out.info(
                f"Explicitly applied {name} delegate, and the model graph will be "
                "completely executed by the delegate."
            )
        elif kernels:
            self.out.info(
                f"Explicitly applied {name} delegate, and the model graph will be "
                f"partially executed by the delegate w/ {kernels} delegate kernels."
            )
        else:
            self.out.info(
                f"Though {name} delegate is explicitly applied, the model graph will "
                "not be executed by the delegate."
            )
