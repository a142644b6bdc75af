"""adb servers and device selection.

Servers come from ``--adb HOST:PORT`` (repeatable), else ANDROID_ADB_SERVER_HOST/PORT, else
127.0.0.1:5037. A local server that is not running is started from the adb binary bundled in
the adbutils wheel (no system package needed). Devices of all servers are listed together and
selected by serial, by model-code prefix (``SM-G973`` matches SM-G973F/U/N) or by glob.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import adbutils

from harness import config
from harness.devices.identity import DeviceId
from harness.errors import AdbUnavailable, DeviceNotFound, DeviceUnavailable, UsageError

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class AdbServer:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.host in _LOCAL_HOSTS

    def client(self, timeout: float = 30.0) -> adbutils.AdbClient:
        return adbutils.AdbClient(host=self.host, port=self.port, socket_timeout=timeout)


def parse_server(text: str) -> AdbServer:
    """``HOST:PORT``, ``HOST`` or ``PORT`` -> AdbServer."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = (
            (config.DEFAULT_ADB_HOST, text)
            if text.isdigit()
            else (text, str(config.DEFAULT_ADB_PORT))
        )
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--adb expects HOST:PORT, got {text!r}")
    return AdbServer(host.strip("[]"), int(port_text))


def resolve_servers(values: Sequence[str] | None = None) -> list[AdbServer]:
    if values:
        servers = [parse_server(v) for v in values]
    else:
        servers = [AdbServer(h, p) for h, p in config.adb_servers_from_env()]
    return list(dict.fromkeys(servers))  # keep order, drop duplicates


def adb_binary() -> str:
    return adbutils.adb_path()


def server_reachable(server: AdbServer, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
            sock.sendall(b"000chost:version")
            return sock.recv(4) == b"OKAY"
    except OSError:
        return False


def ensure_server(server: AdbServer, start: bool = True) -> AdbServer:
    """Make sure an adb server answers at ``server``; start the bundled one if it is local."""
    if server_reachable(server):
        return server
    if not (start and server.is_local):
        raise AdbUnavailable(f"no adb server reachable at {server.address}")
    if server.port < 1024:  # a privileged port is never an adb server's: not started there
        raise AdbUnavailable(
            f"no adb server reachable at {server.address} (a local adb server is started "
            "only on ports 1024-65535)"
        )
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(server.port))
    try:
        proc = subprocess.run(
            [adb_binary(), "-P", str(server.port), "start-server"],
            env=env,
            capture_output=True,
            timeout=30,
            text=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AdbUnavailable(f"cannot start the adb server on port {server.port}: {exc}") from exc
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server_reachable(server):
            return server
        time.sleep(0.1)
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    raise AdbUnavailable(
        f"cannot start the adb server on port {server.port}" + (f": {detail[-1]}" if detail else "")
    )


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (/proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                _, _, port_hex = fields[1].partition(":")
                if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                    inodes.add(fields[9])
    return inodes


def server_environ(server: AdbServer) -> dict[str, str] | None:
    """The environment of the local adb server process at ``server`` when it runs as this
    user (it decides where the server's keys are: HOME, ADB_VENDOR_KEYS); None when it cannot
    be found (another user's server, no /proc, a remote server)."""
    if not server.is_local:
        return None
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(server.port)}
    if not targets:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != os.getuid():
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(_readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                continue
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        pairs = (item.partition(b"=") for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}
    return None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def kill_server(server: AdbServer) -> None:
    if server_reachable(server):
        with contextlib.suppress(adbutils.AdbError):
            server.client().server_kill()


@dataclass(frozen=True)
class DeviceEntry:
    """One line of ``adb devices -l`` on one server."""

    serial: str
    state: str
    server: AdbServer
    model: str = ""
    product: str = ""
    device: str = ""
    transport_id: int | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> DeviceId:
        """The phone's identity: (this adb server, serial)."""
        return DeviceId(self.server.address, self.serial)

    @property
    def model_code(self) -> str:
        """The model as the phone names it: adb turns '-' and ' ' into '_' in ``devices -l``."""
        return self.model.replace("_", "-")

    @property
    def is_tcp(self) -> bool:
        host, sep, port = self.serial.rpartition(":")
        return bool(sep and host and port.isdigit())


def list_devices(servers: Iterable[AdbServer], start: bool = True) -> list[DeviceEntry]:
    entries: list[DeviceEntry] = []
    for server in servers:
        ensure_server(server, start=start)
        try:
            infos = server.client().list(extended=True)
        except (adbutils.AdbError, OSError) as exc:
            raise AdbUnavailable(
                f"adb server {server.address} failed to list devices: {exc}"
            ) from exc
        for info in infos:
            tags = dict(info.tags)
            tid = tags.get("transport_id", "")
            entries.append(
                DeviceEntry(
                    serial=info.serial,
                    state=info.state,
                    server=server,
                    model=tags.get("model", ""),
                    product=tags.get("product", ""),
                    device=tags.get("device", ""),
                    transport_id=int(tid) if tid.isdigit() else None,
                    tags=tags,
                )
            )
    return entries


def _describe(entries: Sequence[DeviceEntry]) -> str:
    if not entries:
        return "no devices are connected (start one with: harness virtual start --profile SM-G973F)"
    return "connected: " + ", ".join(
        f"{e.serial} ({e.model_code or '?'}, {e.state})" for e in entries
    )


def _shown(entry: DeviceEntry, entries: Sequence[DeviceEntry]) -> str:
    """A device as the user names it: its serial, with its adb server only where another
    server lists the same serial."""
    twins = sum(e.serial == entry.serial for e in entries)
    return str(entry.id) if twins > 1 else entry.serial


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def match(entry: DeviceEntry, pattern: str) -> bool:
    if _is_glob(pattern):
        return fnmatch.fnmatchcase(entry.serial, pattern) or fnmatch.fnmatchcase(
            entry.model_code.upper(), pattern.upper().replace("_", "-")
        )
    if entry.serial == pattern:
        return True
    code = pattern.upper().replace("_", "-").replace(" ", "-")
    return bool(entry.model_code) and entry.model_code.upper().startswith(code)


def select_devices(entries: Sequence[DeviceEntry], patterns: Sequence[str]) -> list[DeviceEntry]:
    """Resolve ``--device`` patterns. A serial or model prefix must name exactly one device
    (``SERIAL@HOST:PORT`` names a serial that several adb servers list); a glob may name
    several. No pattern: exactly one device must be connected."""
    if not patterns:
        usable = [e for e in entries if e.state == "device"]
        if len(usable) == 1:
            return usable
        if not usable:
            raise DeviceNotFound(_describe(entries))
        raise DeviceNotFound(
            f"several devices connected, pick one with --device; {_describe(entries)}"
        )
    chosen: list[DeviceEntry] = []
    for pattern in patterns:
        exact = [e for e in entries if pattern in (e.serial, str(e.id))]
        found = exact or [e for e in entries if match(e, pattern)]
        if not found:
            raise DeviceNotFound(f"no device matches {pattern!r}; {_describe(entries)}")
        if len(found) > 1 and not _is_glob(pattern):
            names = ", ".join(f"{_shown(e, entries)} ({e.model_code})" for e in found)
            raise DeviceNotFound(
                f"{pattern!r} is ambiguous: it matches {names}; use a serial "
                "(SERIAL@HOST:PORT where several adb servers list it)"
            )
        for entry in found:
            if entry.state != "device":
                raise DeviceUnavailable(
                    f"device {entry.serial} is {entry.state}"
                    + (
                        ": accept the USB debugging prompt on the phone"
                        if entry.state == "unauthorized"
                        else ""
                    )
                )
            if entry not in chosen:
                chosen.append(entry)
    return chosen


def _is_address(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit()) and not _is_glob(text)


def revive_offline(
    entries: list[DeviceEntry],
    patterns: Sequence[str],
    servers: Sequence[AdbServer],
    timeout: float = 15.0,
) -> list[DeviceEntry]:
    """``adb connect`` again the network (and virtual) phones that dropped off: those listed
    offline that ``patterns`` select (all, without patterns), and a ``HOST:PORT`` pattern no
    server lists any more. Then list again; a phone that stays away is left to selection to
    report."""
    stale = [
        (e.server, e.serial, timeout)
        for e in entries
        if e.state == "offline"
        and e.is_tcp
        and (not patterns or any(e.serial == p or match(e, p) for p in patterns))
    ]
    listed = {e.serial for e in entries}
    stale += [  # never seen, or disconnected while away: one short try (a typo fails fast)
        (s, p, min(timeout, 3.0))
        for p in patterns
        if _is_address(p) and p not in listed
        for s in servers
    ]
    if not stale or timeout <= 0:
        return entries
    revived: set[str] = set()
    for server, serial, wait in stale:
        if serial in revived:
            continue
        with contextlib.suppress(DeviceUnavailable, adbutils.AdbError, OSError):
            connect(server, serial, timeout=wait)
            revived.add(serial)
    return list_devices(servers, start=False)


def connect(
    server: AdbServer, address: str, timeout: float = 15.0, accept: tuple[str, ...] = ("device",)
) -> None:
    """``adb connect ADDRESS`` and wait until the device is online.

    After a device restarts, the server may still hold the old (offline) transport and answer
    "already connected": then disconnect and connect again, polling until ``device``.
    """
    client = server.client(timeout=timeout)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = client.connect(address, timeout=min(5.0, timeout))
            state = _state(client, address)
            if state in accept:
                return
            if "already connected" in last and state not in accept:
                client.disconnect(address)
        except (adbutils.AdbError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise DeviceUnavailable(f"could not connect {address} through {server.address}: {last.strip()}")


def wait_for_device(server: AdbServer, serial: str, timeout: float = 20.0) -> None:
    """Wait until ``serial`` is listed as ``device`` (a USB phone that re-enumerated)."""
    deadline = time.monotonic() + timeout
    state = "missing"
    while True:
        try:
            state = _state(server.client(timeout=min(5.0, timeout)), serial)
        except (adbutils.AdbError, OSError) as exc:
            state = f"unreachable ({exc})"
        if state == "device":
            return
        if time.monotonic() >= deadline:
            raise DeviceUnavailable(f"{serial} did not come back within {timeout:g}s ({state})")
        time.sleep(0.2)


def disconnect(server: AdbServer, address: str) -> None:
    if server_reachable(server):
        server.client().disconnect(address)


def _state(client: adbutils.AdbClient, serial: str) -> str:
    for info in client.list():
        if info.serial == serial:
            return info.state
    return "missing"
