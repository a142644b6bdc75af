"""Put what a device needs on it: the benchmark binary, the variants, the eval inputs.

Everything is pushed hash-cached (an unchanged file is never sent twice) under
``/data/local/tmp/harness``; the inputs are the eval images preprocessed per the variant's
input spec, one raw tensor file per image, pushed once per (eval set, input spec). Every step
is safe to repeat, so a dropped transfer is retried with backoff (``Device.retrying``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import assets, config
from harness.bench.plan import Target, input_key
from harness.devices.device import Device, quote
from harness.devices.info import DeviceInfo
from harness.errors import AssetError

REMOTE_ROOT = "/data/local/tmp/harness"
REMOTE_BINARY = f"{REMOTE_ROOT}/bin/benchmark_model"
REMOTE_ACCURACY = f"{REMOTE_ROOT}/scripts/accuracy.sh"
REMOTE_APK = f"{REMOTE_ROOT}/apk/benchmark_model.apk"
KERNEL_CACHE = f"{REMOTE_ROOT}/kernel-cache"  # --delegate_serialize_dir: GPU kernels across runs


@dataclass
class Staged:
    """What is on one device, for the cells that run there."""

    binary: str = REMOTE_BINARY
    accuracy_script: str = REMOTE_ACCURACY
    input_dirs: dict[str, str] = field(default_factory=dict)  # variant sha256 -> remote dir
    models: dict[str, str] = field(default_factory=dict)  # variant sha256 -> remote path
    inputs: dict[str, list[str]] = field(default_factory=dict)  # input key -> remote files
    input_keys: dict[str, str] = field(default_factory=dict)  # variant sha256 -> input key
    bytes_sent: int = 0
    bytes_skipped: int = 0
    abi: str = ""
    binary_sha256: str = ""  # the pinned benchmark_model that was pushed
    apk_sha256: str = ""  # the pinned benchmark APK that was installed (--runner apk)


def local_inputs(key: str, images: np.ndarray, target: Target) -> list[Path]:
    """The preprocessed inputs of (eval set, input spec), one file per image, shared by every
    device. A cached file is checked against the bytes it must hold before it is used (a
    truncated or altered one is written again): a bad input would fail every later run with
    a false benchmark_model crash."""
    from harness.convert.reference import preprocess

    folder = config.home_dir() / "inputs" / key
    files = [folder / f"{i}.raw" for i in range(len(images))]
    folder.mkdir(parents=True, exist_ok=True)
    for path, sample in zip(files, preprocess(images, target.input), strict=True):
        data = np.ascontiguousarray(sample).tobytes()
        try:
            same = path.stat().st_size == len(data) and path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    return files


def stage(
    device: Device,
    info: DeviceInfo,
    targets: list[Target],
    eval_fingerprint: str,
    inputs_by_key: dict[str, list[Path]],
    runner: str = "shell",
) -> Staged:
    status = assets.binary_for_abi(info.abi)  # AssetError: missing, unpinned, mismatch
    staged = Staged(abi=info.abi, binary_sha256=status.actual_sha256)
    if runner == "apk":
        from harness.bench import apk

        apk_status = assets.apk_for_abi(info.abi)
        staged.apk_sha256 = apk_status.actual_sha256
        staged.bytes_sent += apk.install(device, apk_status.asset.path, REMOTE_APK)
    pairs: list[tuple[Path, str]] = [
        (status.asset.path, REMOTE_BINARY),
        (config.assets_dir() / "scripts" / "accuracy.sh", REMOTE_ACCURACY),
    ]
    for target in targets:
        remote = f"{REMOTE_ROOT}/models/{target.sha256[:16]}.tflite"
        staged.models[target.sha256] = remote
        pairs.append((target.path, remote))
    results = device.retrying(lambda: device.push_many(pairs[:1], mode=0o755), "push binary")
    results += device.retrying(lambda: device.push_many(pairs[1:]), "push models")
    prepare = f"chmod 755 {quote(REMOTE_BINARY)} && mkdir -p {quote(KERNEL_CACHE)}"
    if not device.retrying(lambda: device.shell(prepare), "chmod").ok:
        raise AssetError(f"cannot make {REMOTE_BINARY} executable on {device.serial}")
    for target in targets:
        key = input_key(eval_fingerprint, target.input)
        staged.input_keys[target.sha256] = key
        staged.input_dirs[target.sha256] = f"{REMOTE_ROOT}/inputs/{key}"
        if key in staged.inputs:
            continue
        remote_files = [f"{REMOTE_ROOT}/inputs/{key}/{f.name}" for f in inputs_by_key[key]]
        pairs = list(zip(inputs_by_key[key], remote_files, strict=True))
        results += device.retrying(lambda pairs=pairs: device.push_many(pairs), "push inputs")
        staged.inputs[key] = remote_files
    staged.bytes_sent += sum(r.bytes_sent for r in results)
    staged.bytes_skipped = sum(r.size for r in results if r.skipped)
    return staged
