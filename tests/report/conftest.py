"""Stores filled like a real `harness bench` run on two virtual phones (SM-G973F, SM-G973U).

Everything goes through the Store API with cell JSON exactly as docs/results-schema.md says.
:class:`FakeBench` makes runs; keyword arguments inject what the tests need: a slow cell, a
wrong cell (softmax on the FP16 GPU with NaNs), a failed cell, unmeasured cells, a latency
scale (a run 20% slower than its baseline).
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from harness.cell import Accuracy, Cell, Delegation, DeviceId, Latency, Status
from harness.errors import HarnessError
from harness.store import Store

ADB_SERVER = "127.0.0.1:5037"  # the adb server every fake phone is listed by

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPO / "benchmarks" / "release.toml"

DEVICES = {
    "SM-G973F": {
        "serial": "127.0.0.1:40101",
        "soc": "Exynos 9820",
        "gpu": "Mali-G76",
        "gpu_vendor": "ARM",
        "board_platform": "universal9820",
        "speed": 1.0,
    },
    "SM-G973U": {
        "serial": "127.0.0.1:40102",
        "soc": "Snapdragon 855",
        "gpu": "Adreno 640",
        "gpu_vendor": "Qualcomm",
        "board_platform": "msmnile",
        "speed": 0.8,
    },
}
VARIANTS = ("softmax-fp32", "sigmoid-fp16", "softmax-int8")
DELEGATES = ("cpu", "gpu", "gpu-fp32")
N, H, W = 4, 32, 32
EVAL_FINGERPRINT = "evalset-synthetic-4"

# (variant, delegate) -> base latency in ms on the SM-G973F
_BASE_MS = {
    ("softmax-fp32", "cpu"): 14.0,
    ("softmax-fp32", "gpu"): 6.0,
    ("softmax-fp32", "gpu-fp32"): 8.5,
    ("sigmoid-fp16", "cpu"): 13.5,
    ("sigmoid-fp16", "gpu"): 5.5,
    ("sigmoid-fp16", "gpu-fp32"): 8.0,
    ("softmax-int8", "cpu"): 7.0,
    ("softmax-int8", "gpu"): 9.0,
    ("softmax-int8", "gpu-fp32"): 10.5,
}
WRONG = ("SM-G973F", "softmax-fp32", "gpu")  # the Samsung softmax-on-FP16-GPU failure
SLOW = ("SM-G973U", "sigmoid-fp16", "cpu")


def sha(variant_id: str) -> str:
    return hashlib.sha256(variant_id.encode()).hexdigest()


def device_info(model: str, serial: str) -> dict:
    d = DEVICES.get(model, DEVICES["SM-G973F"])
    return {
        "serial": serial,
        "model": model,
        "manufacturer": "samsung",
        "soc": d["soc"],
        "gpu": d["gpu"],
        "gpu_vendor": d["gpu_vendor"],
        "gles": "OpenGL ES 3.2",
        "board_platform": d["board_platform"],
        "hardware": d["board_platform"],
        "egl": "mali" if d["gpu_vendor"] == "ARM" else "adreno",
        "abi": "harness-virtual",
        "android_release": "12",
        "sdk": 31,
        "cpu_max_khz": [1950000] * 4 + [2314000] * 2 + [2730000] * 2,
        "cores": 8,
        "thermal": [{"name": "thermal_zone0", "type": "BIG", "temp_c": 38.0}],
        "battery_level": 87,
        "battery_temp_c": 29.5,
        "virtual": True,
        "profile": model,
    }


def _disc(cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return 1.0 / (1.0 + np.exp(dist - r))  # soft disc, fg probability


def eval_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images [N,H,W,3] uint8, ground-truth masks, and the desktop fg probabilities."""
    rng = np.random.default_rng(7)
    fg = np.stack([_disc(16 + i, 14 + 2 * i, 8 + i) for i in range(N)]).astype(np.float32)
    masks = (fg > 0.5).astype(np.uint8)
    base = rng.integers(40, 90, size=(N, H, W, 3))
    person = np.array([210, 160, 120])
    images = np.where(masks[..., None] == 1, person, base).astype(np.uint8)
    return images, masks, fg


def outputs_npz(ref_fg: np.ndarray, wrong: bool, fp16: bool = False) -> tuple[bytes, dict]:
    """The cell's outputs npz and its ``accuracy.vs_reference`` numbers. A healthy cell equals
    the reference up to 0.001 (FP16: a few edge pixels flip); a wrong one has NaNs and half
    the frame as foreground."""
    ref_mask = (ref_fg > 0.5).astype(np.uint8)
    if wrong:
        device_fg = np.zeros_like(ref_fg)
        device_fg[:, :, W // 2 :] = 0.9  # half the frame is "person"
        device_fg[:, :8, :8] = np.nan  # FP16 exp overflow
    else:
        device_fg = (ref_fg + np.where(ref_fg > 0.5, 0.001, -0.001)).astype(np.float32)
        if fp16:
            edge = np.argwhere(ref_mask[0] == 1)[:3]
            device_fg[0, edge[:, 0], edge[:, 1]] = 0.2
    device_mask = (np.nan_to_num(device_fg) > 0.5).astype(np.uint8)
    ious = []
    for d, r in zip(device_mask.astype(bool), ref_mask.astype(bool), strict=True):
        ious.append(float((d & r).sum() / max(1, (d | r).sum())))
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        device_fg=device_fg,
        device_mask=device_mask,
        ref_fg=ref_fg,
        ref_mask=ref_mask,
        device_raw=device_fg[..., None],
    )
    nan = int(np.isnan(device_fg).sum())
    vs_ref = {
        "iou": float(np.mean(ious)),
        "iou_min": float(min(ious)),
        "max_abs": 1.0 if wrong else 0.002,
        "mean_abs": 0.4 if wrong else 0.002,
        "psnr_db": 4.1 if wrong else 54.0,
        "nan": nan,
        "inf": 0,
        "sum_to_one_err": None,
        "constant": False,
        "inverted": False,
        "worst": [int(i) for i in np.argsort(ious)[:3]],
    }
    return buf.getvalue(), vs_ref


@dataclass
class FakeBench:
    store: Store
    made: list[str] = field(default_factory=list)

    def run(
        self,
        *,
        scale: float = 1.0,
        slow: tuple[str, str, str] | None = None,
        slow_ms: float = 5000.0,
        wrong: tuple[str, str, str] | None = None,
        failed: tuple[str, str, str] | None = None,
        unmeasured: tuple[tuple[str, str, str], ...] = (),
        models: dict[str, str] | None = None,
        virtual: bool = True,
        status: str = "complete",
        tag: str | None = None,
        port_offset: int = 0,
    ) -> str:
        """One run on the two phones; ``models`` maps model code -> shown model string;
        ``port_offset`` moves the virtual phones' ports (new serials, as after a restart)."""
        images, masks, ref_fg = eval_set()
        self.store.add_evalset(EVAL_FINGERPRINT, "synthetic-4", images, masks)
        devices = {}
        for code, d in DEVICES.items():
            host, port = d["serial"].rsplit(":", 1)
            devices[code] = f"{host}:{int(port) + port_offset}"
        config = {
            "model": "portrait-tiny",
            "devices": sorted(devices.values()),
            "device_ids": [DeviceId(ADB_SERVER, s).to_json() for s in sorted(devices.values())],
            "variants": [{"id": v, "sha256": sha(v), "file": f"{v}.tflite"} for v in VARIANTS],
            "delegates": list(DELEGATES),
            "runs": 20,
            "warmup": 2,
            "repeats": 2,
            "threads": 4,
            "eval_set": {"name": "synthetic-4", "fingerprint": EVAL_FINGERPRINT, "n": N,
                         "source": "synthetic"},
        }  # fmt: skip
        run_id = self.store.create_run(config)
        for variant in VARIANTS:
            spec = {"id": variant, "head": variant.split("-")[0], "file": f"{variant}.tflite"}
            self.store.add_variant(sha(variant), variant, "portrait-tiny", spec)
        t = 1_700_000_000.0
        for code, serial in devices.items():
            shown = (models or {}).get(code, code)
            info = device_info(shown, serial) | {"virtual": virtual}
            self.store.add_device(run_id, DeviceId(ADB_SERVER, serial), shown, virtual, info)
            for variant in VARIANTS:
                for delegate in DELEGATES:
                    key = (code, variant, delegate)
                    if key in unmeasured:
                        continue
                    avg = _BASE_MS[(variant, delegate)] * DEVICES[code]["speed"] * scale
                    if key == slow:
                        avg = slow_ms
                    blob, vs_ref = outputs_npz(ref_fg, key == wrong, fp16=delegate == "gpu")
                    self.store.record_cell(
                        self._cell(run_id, serial, variant, delegate, avg, vs_ref, key == failed,
                                   key == wrong, virtual, t),
                        outputs=None if key == failed else blob,
                    )  # fmt: skip
                    t += 3.0
        self.store.finish_run(run_id, status)
        if tag:
            self.store.tag(run_id, tag)
        self.made.append(run_id)
        return run_id

    @staticmethod
    def _cell(run_id, serial, variant, delegate, avg, vs_ref, failed, wrong, virtual, t):
        gpu = delegate.startswith("gpu")
        # five invocations within ±1%: the 95% t interval of the mean is about ±1%
        invocations = [round(avg * f, 4) for f in (0.99, 0.995, 1.0, 1.005, 1.01)]
        latency = {
            "runs": 20, "warmup_runs": 2, "repeats": 5, "threads": 4, "affinity": None,
            "init_ms": 420.0 if gpu else 35.0, "first_ms": avg * 1.3,
            "warmup_avg_ms": avg * 1.1, "avg_ms": avg, "std_ms": avg * 0.03,
            "min_ms": avg * 0.94, "max_ms": avg * 1.12, "p5_ms": None, "median_ms": None,
            "p95_ms": None, "invocation_avg_ms": invocations,
            "spread_pct": (invocations[-1] - invocations[0]) / avg * 100, "peak_mem_mb": 21.5,
        }  # fmt: skip
        if gpu and variant == "softmax-int8":
            delegation = {
                "verdict": "partial",
                "unsupported_ops": [["QUANTIZE", "Operation is not supported."]],
                "gpu_backend": "opencl", "cl_to_gl_fallback": False,
                "replaced_nodes": 29, "total_nodes": 31, "virtual": virtual,
            }  # fmt: skip
        elif gpu:
            delegation = {
                "verdict": "full", "unsupported_ops": [], "gpu_backend": "opencl",
                "cl_to_gl_fallback": False, "replaced_nodes": 31, "total_nodes": 31,
                "virtual": virtual,
            }  # fmt: skip
        else:
            delegation = {"verdict": "none", "unsupported_ops": [], "virtual": virtual}
        iou_gt = 0.1 if wrong else 0.93
        accuracy = {
            "n": N,
            "vs_reference": vs_ref,
            "vs_float": {"iou": vs_ref["iou"], "max_abs": 0.01, "mean_abs": 0.001},
            "vs_gt": {"iou": iou_gt, "pixel_acc": 0.5 if wrong else 0.97},
            "signature": "nan" if wrong else "ok",
        }
        thermal = {"before": {"zones": {"BIG": 38.0}}, "after": {"zones": {"BIG": 39.5}}}
        device = DeviceId(ADB_SERVER, serial)
        if failed:
            return Cell(run_id, device, sha(variant), variant, delegate, Status.FAILED,
                        "benchmark_model crashed (SIGSEGV, exit 139)", t, t + 2.0,
                        thermal=thermal, log="INFO: Loaded model\nSegmentation fault")  # fmt: skip
        return Cell(run_id, device, sha(variant), variant, delegate, Status.MEASURED, "", t,
                    t + 2.5, Latency.from_json(latency), Accuracy.from_json(accuracy),
                    Delegation.from_json(delegation), thermal,
                    f"INFO: Loaded model /data/local/tmp/harness/{variant}.tflite\n"
                    f"INFO: Inference (avg): {avg * 1000:.0f}")  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "harness.db") as s:
        yield s


@pytest.fixture
def bench(store: Store) -> FakeBench:
    return FakeBench(store)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``harness report|tag|gate ...`` through harness.cli.main (exit codes as users see
    them)."""
    from harness import cli as cli_mod

    monkeypatch.setenv("COLUMNS", "200")
    from harness import ui

    ui.console.cache_clear()
    ui.err_console.cache_clear()

    def _run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            cli_mod.main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        except HarnessError as exc:  # pragma: no cover - main maps these to SystemExit
            code = int(exc.exit_code)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    yield _run
    ui.console.cache_clear()
    ui.err_console.cache_clear()
    sys.stdout.flush()
