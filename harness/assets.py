"""What goes to the phone: benchmark binaries and APKs per ABI (``android_assets/manifest.toml``).

Measuring is only as trustworthy as the runner: an asset is used only when its sha256 is
pinned in the manifest and the file matches the pin. A missing, unpinned or mismatched asset
is a one-line :class:`AssetError` (exit 9) naming the ``harness assets`` command that fixes it.
``HARNESS_ASSETS`` points the harness at another assets folder (tests use a test manifest).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import re
import shutil
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import config
from harness.devices.cache import sha256_file
from harness.errors import AssetError, UsageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class AssetKind(enum.Enum):
    """What an asset is; owns its manifest table name and how the user selects it."""

    BINARY = "binary"  # benchmark_model, run by `adb shell` (the shell runner)
    APK = "apk"  # the benchmark app (org.tensorflow.lite.benchmark), the apk runner

    @property
    def table(self) -> str:
        return self.value

    @property
    def flag(self) -> str:
        return " --apk" if self is AssetKind.APK else ""

    @property
    def label(self) -> str:
        return "benchmark APK" if self is AssetKind.APK else "benchmark_model"


@dataclass(frozen=True)
class BinaryAsset:
    abi: str
    name: str
    file: str
    source: str
    sha256: str
    url: str = ""
    kind: AssetKind = AssetKind.BINARY

    @property
    def path(self) -> Path:
        return config.assets_dir() / self.file

    @property
    def ref(self) -> str:
        """How a command names it: ``arm64-v8a`` or ``arm64-v8a --apk``."""
        return self.abi + self.kind.flag


@dataclass(frozen=True)
class AssetStatus:
    asset: BinaryAsset
    present: bool
    actual_sha256: str
    problem: str  # "" when usable

    @property
    def ok(self) -> bool:
        return self.present and not self.problem and bool(self.asset.sha256)

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        if self.problem:
            return "bad checksum"
        return "ok" if self.asset.sha256 else "unpinned"

    def to_json(self) -> dict:
        a = self.asset
        return {
            "abi": a.abi,
            "kind": a.kind.value,
            "file": str(a.path),
            "state": self.state,
            "pinned_sha256": a.sha256 or None,
            "actual_sha256": self.actual_sha256 or None,
            "url": a.url or None,
            "source": a.source,
            "problem": self.problem or None,
        }


def manifest_path() -> Path:
    return config.assets_dir() / "manifest.toml"


def load_manifest() -> list[BinaryAsset]:
    path = manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [
            BinaryAsset(
                str(b["abi"]),
                str(b.get("name", kind.label)),
                str(b["file"]),
                str(b.get("source", "")),
                str(b.get("sha256", "")),
                str(b.get("url", "")),
                kind,
            )
            for kind in AssetKind
            for b in data.get(kind.table, [])
        ]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise AssetError(f"{path}: unreadable asset manifest ({exc})") from exc


def find(abi: str, kind: AssetKind = AssetKind.BINARY) -> BinaryAsset:
    for asset in load_manifest():
        if asset.abi == abi and asset.kind is kind:
            return asset
    known = sorted({a.abi for a in load_manifest() if a.kind is kind})
    raise AssetError(
        f"no {kind.label} is listed for ABI {abi!r} in {manifest_path()} "
        f"(listed: {', '.join(known) or 'none'}; see: harness assets list)"
    )


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


def usable(abi: str, kind: AssetKind = AssetKind.BINARY) -> AssetStatus:
    """The pinned, matching asset for a phone's ABI, or a one-line AssetError (exit 9)."""
    asset = find(abi, kind)
    status = check(asset)
    if not status.present:
        how = f"harness assets fetch {asset.ref}" if asset.url else f"get {asset.source} and put it"
        raise AssetError(
            f"{kind.label} for {abi} is missing: run {how} (or put the file at {asset.path} "
            f"and run: harness assets pin {asset.ref})"
        )
    if status.problem:
        raise AssetError(f"{asset.path}: {status.problem}; refusing to benchmark with it")
    if not asset.sha256:
        raise AssetError(
            f"{asset.path} is not pinned (sha256 {status.actual_sha256[:12]}...); refusing to "
            f"run an unpinned file: check where it came from, then run: harness assets pin "
            f"{asset.ref}"
        )
    return status


def binary_for_abi(abi: str) -> AssetStatus:
    return usable(abi, AssetKind.BINARY)


def apk_for_abi(abi: str) -> AssetStatus:
    return usable(abi, AssetKind.APK)


def pin(abi: str, kind: AssetKind = AssetKind.BINARY, source: Path | None = None) -> str:
    """Record the sha256 of the file at an asset's path (after copying ``source`` there)."""
    asset = find(abi, kind)
    if source is not None:
        if not source.is_file():
            raise UsageError(f"{source}: no such file")
        asset.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = asset.path.with_name(f".{asset.path.name}.partial")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o755)
        tmp.replace(asset.path)
    status = check(asset)
    if not status.present:
        raise AssetError(
            f"nothing to pin: {asset.path} does not exist (put the file there, pass --file PATH, "
            f"or run: harness assets fetch {asset.ref})"
        )
    _write_pin(asset, status.actual_sha256)
    return status.actual_sha256


def _write_pin(asset: BinaryAsset, sha256: str) -> None:
    path = manifest_path()
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(
        r"(\[\["
        + asset.kind.table
        + r'\]\]\s*\n(?:(?!\[\[)[^\n]*\n)*?abi = "'
        + re.escape(asset.abi)
        + r'"(?:\n(?!\[\[)[^\n]*)*?\nsha256 = ")[^"]*(")'
    )
    new, count = pattern.subn(lambda m: m.group(1) + sha256 + m.group(2), text, count=1)
    if count != 1:
        raise AssetError(f"{path}: could not find the sha256 line of {asset.ref}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class Fetched:
    asset: BinaryAsset
    sha256: str
    size: int
    pinned_now: bool  # True when --pin recorded a first pin


def fetch(
    abi: str,
    kind: AssetKind = AssetKind.BINARY,
    *,
    url: str | None = None,
    pin_new: bool = False,
    timeout: float = 60.0,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Fetched:
    """Download an asset from its published URL and keep it only if it matches the pin.

    With no pin in the manifest the file is kept but stays unusable (bench refuses unpinned
    files) unless ``pin_new`` trusts it on first use and records its sha256.
    """
    asset = find(abi, kind)
    source = url or asset.url
    if not source:
        raise AssetError(f"{asset.ref}: the manifest has no url; pass --url URL")
    if not source.startswith(("https://", "http://")):
        raise UsageError(f"--url {source}: only http:// and https:// URLs are fetched")
    asset.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = asset.path.with_name(f".{asset.path.name}.download")
    try:
        sha, size = _download(source, tmp, timeout, on_progress)
        if asset.sha256 and sha != asset.sha256:
            raise AssetError(
                f"{source}: downloaded sha256 {sha[:12]}... does not match the pinned "
                f"{asset.sha256[:12]}... for {asset.ref}; nothing was installed"
            )
        tmp.chmod(0o755)
        tmp.replace(asset.path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    pinned_now = False
    if not asset.sha256 and pin_new:
        _write_pin(asset, sha)
        pinned_now = True
    return Fetched(asset, sha, size, pinned_now)


def _download(
    url: str, dest: Path, timeout: float, on_progress: Callable[[int, int | None], None] | None
) -> tuple[str, int]:
    digest = hashlib.sha256()
    done, total = 0, None
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - scheme checked
        with response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
    except urllib.error.HTTPError as exc:
        raise AssetError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AssetError(
            f"{url}: download failed ({reason}); without a network, put the file in place and "
            "pin it (docs/real-phone.md)"
        ) from exc
    if total is not None and done != total:
        raise AssetError(f"{url}: download stopped after {done} of {total} bytes")
    return digest.hexdigest(), done
