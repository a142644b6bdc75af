"""What goes to the phone: benchmark binaries per ABI (``android_assets/manifest.toml``).

Measuring is only as trustworthy as the binary: an asset with a pinned sha256 that does not
match is refused, and a missing binary for a real phone is a one-line error saying where to
get it and where to put it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness import config
from harness.devices.cache import sha256_file
from harness.errors import AssetError


@dataclass(frozen=True)
class BinaryAsset:
    abi: str
    name: str
    file: str
    source: str
    sha256: str

    @property
    def path(self) -> Path:
        return config.assets_dir() / self.file


@dataclass(frozen=True)
class AssetStatus:
    asset: BinaryAsset
    present: bool
    actual_sha256: str
    problem: str  # "" when usable

    @property
    def ok(self) -> bool:
        return self.present and not self.problem

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        if self.problem:
            return "bad checksum" if "sha256" in self.problem else "unusable"
        return "ok" if self.asset.sha256 else "ok (unpinned)"


def manifest_path() -> Path:
    return config.assets_dir() / "manifest.toml"


def load_manifest() -> list[BinaryAsset]:
    path = manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [
            BinaryAsset(
                str(b["abi"]),
                str(b["name"]),
                str(b["file"]),
                str(b.get("source", "")),
                str(b.get("sha256", "")),
            )
            for b in data.get("binary", [])
        ]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise AssetError(f"{path}: unreadable asset manifest ({exc})") from exc


def check(asset: BinaryAsset) -> AssetStatus:
    if not asset.path.is_file():
        return AssetStatus(asset, False, "", "")
    actual = sha256_file(asset.path)
    problem = ""
    if asset.sha256 and asset.sha256 != actual:
        problem = f"sha256 {actual[:12]}... does not match the pinned {asset.sha256[:12]}..."
    return AssetStatus(asset, True, actual, problem)


def check_all() -> list[AssetStatus]:
    return [check(a) for a in load_manifest()]


def binary_for_abi(abi: str) -> AssetStatus:
    """The usable benchmark binary for a phone's ABI, or a one-line AssetError."""
    assets = {a.abi: a for a in load_manifest()}
    asset = assets.get(abi)
    if asset is None:
        raise AssetError(f"no benchmark_model is listed for ABI {abi!r} in {manifest_path()}")
    status = check(asset)
    if not status.present:
        raise AssetError(
            f"benchmark_model for {abi} is missing: get {asset.source} and put it at "
            f"{asset.path}, then run: harness assets pin {abi}"
        )
    if status.problem:
        raise AssetError(f"{asset.path}: {status.problem}; refusing to benchmark with it")
    return status


def pin(abi: str) -> str:
    """Record the sha256 of the binary now at an ABI's path in the manifest."""
    status = check(next((a for a in load_manifest() if a.abi == abi), None) or _unknown(abi))
    if not status.present:
        raise AssetError(f"nothing to pin: {status.asset.path} does not exist")
    path = manifest_path()
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(
        r'(\[\[binary\]\]\s*\nabi = "'
        + re.escape(abi)
        + r'"(?:\n(?!\[\[)[^\n]*)*?\nsha256 = ")[^"]*(")'
    )
    new, count = pattern.subn(lambda m: m.group(1) + status.actual_sha256 + m.group(2), text)
    if count != 1:
        raise AssetError(f"{path}: could not find the sha256 line of ABI {abi}")
    path.write_text(new, encoding="utf-8")
    return status.actual_sha256


def _unknown(abi: str) -> BinaryAsset:
    raise AssetError(f"no benchmark_model is listed for ABI {abi!r} in {manifest_path()}")
