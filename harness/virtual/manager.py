"""Start, stop and list virtual phones.

Each virtual phone is its own process (``harness.virtual.server``) listening on
127.0.0.1:PORT, registered with the adb server(s) by ``adb connect``. A registry file per phone
(``HARNESS_HOME/virtual/<port>.json``) records pid, profile, sandbox and servers; the sandbox
(``HARNESS_HOME/virtual/<profile>-<port>/root``) survives a restart, like a phone's storage.

A phone authorizes the adb keys of the servers it is started for (``adb_keys`` next to its
sandbox, like adbd's ``/data/misc/adb/adb_keys``): each server's ``$HOME/.android/adbkey`` and
``ADB_VENDOR_KEYS``, read from that server's own environment when it runs as this user.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import config
from harness.devices import adbkey
from harness.devices.adb import AdbServer, connect, disconnect, ensure_server, server_environ
from harness.errors import UsageError, VirtualPhoneError
from harness.virtual.chaos import CHAOS_FILE, ChaosSpec, Drop, LinkFaults
from harness.virtual.profiles import (
    check_abi,
    load_profile,
    resolve_delegate,
    resolve_faults,
)
from harness.virtual.server import BIND_HOST

FIRST_PORT = 7401  # outside adb's emulator scan range (5555-5585)


@dataclass(frozen=True)
class VirtualRecord:
    serial: str
    port: int
    pid: int
    profile: str
    model: str
    root: str
    log: str
    servers: list[str]
    faults: list[str]
    started: float
    abi: str = ""  # a real ABI presented instead of harness-virtual (--abi); "" = virtual
    delegate: str = ""  # the GPU delegate generation (harness/tflite/gpu_delegates.py)

    @property
    def alive(self) -> bool:
        return _pid_alive(self.pid)


def registry_dir() -> Path:
    path = config.home_dir() / "virtual"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((BIND_HOST, port))
        except OSError:
            return False
    return True


def _pick_port() -> int:
    taken = {r.port for r in list_virtual()}
    for port in range(FIRST_PORT, FIRST_PORT + 200):
        if port not in taken and port_free(port):
            return port
    raise VirtualPhoneError(f"no free port in {FIRST_PORT}-{FIRST_PORT + 199}")


def list_virtual(prune: bool = True) -> list[VirtualRecord]:
    records = []
    for file in sorted(registry_dir().glob("*.json")):
        try:
            record = VirtualRecord(**json.loads(file.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if not record.alive and prune:
            file.unlink(missing_ok=True)
            continue
        records.append(record)
    return records


def authorized_keys(servers: list[AdbServer]) -> list[adbkey.PublicKey]:
    """The public keys the adb servers sign with (this process's environment stands for a
    server whose own cannot be read)."""
    keys: list[adbkey.PublicKey] = []
    for server in servers:
        env = server_environ(server) or os.environ
        keys += [k for k in adbkey.load_public_keys(adbkey.key_files(env)) if k not in keys]
    return keys


def _write_keys(path: Path, servers: list[AdbServer], extra: list[adbkey.PublicKey]) -> None:
    keys = authorized_keys(servers)
    keys += [k for k in extra if k not in keys]
    if not keys:
        looked = ", ".join(str(f) for f in adbkey.key_files(os.environ))
        raise VirtualPhoneError(
            f"no adb key to authorize (looked for {looked}): the adb server creates "
            "~/.android/adbkey when it starts; restart it with 'adb kill-server'"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(adbkey.encode_public(k) + "\n" for k in keys), encoding="ascii")
    tmp.chmod(0o600)
    tmp.replace(path)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    """The phone's server process (``python -m harness.virtual.server ARGS``), in a session of
    its own, its output appended to ``log``."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(config.REPO_ROOT), os.environ.get("PYTHONPATH")])
        ),
    )
    with open(log, "ab") as log_handle:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.virtual.server", *args],
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def _wait_ready(
    proc: subprocess.Popen, ready: Path, log: Path, profile_name: str, timeout: float
) -> None:
    """Until the server writes its ready file; VirtualPhoneError when it exits or is late."""
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise VirtualPhoneError(f"virtual {profile_name} failed to start: {tail[0]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise VirtualPhoneError(f"virtual {profile_name} did not start within {timeout:g}s")
        time.sleep(0.05)


def start(
    profile_name: str,
    port: int | None = None,
    servers: list[AdbServer] | None = None,
    faults: tuple[str, ...] = (),
    timeout: float = 20.0,
    chaos: ChaosSpec | None = None,
    abi: str = "",
    extra_keys: list[adbkey.PublicKey] | None = None,
    delegate: str | None = None,
) -> VirtualRecord:
    """Start a virtual phone of ``profile_name``. ``delegate`` picks its GPU delegate generation
    (default: the profile's; ``"current"`` computes softmax right); ``faults=("none",)`` drops
    the profile's default faults and, without ``delegate``, runs the current delegate: a phone
    with no emulated bug."""
    profile = load_profile(profile_name)  # UsageError for an unknown profile
    check_abi(abi)  # UsageError for an ABI a virtual phone cannot present
    effective = resolve_faults(profile, tuple(faults))  # UsageError for an unknown fault
    generation = resolve_delegate(profile, delegate, tuple(faults))  # UsageError: unknown name
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--port must be 1-65535, got {port}")
    port = port or _pick_port()
    if not port_free(port):
        raise VirtualPhoneError(f"port {port} is in use on {BIND_HOST}; pick another with --port")
    servers = servers or [AdbServer(h, p) for h, p in config.adb_servers_from_env()]
    for server in servers:
        ensure_server(server)  # a server's first start creates its key pair
    base = registry_dir() / f"{profile_name}-{port}"
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    keys_file = base / "adb_keys"
    _write_keys(keys_file, servers, list(extra_keys or ()))
    log = base / "phone.log"
    ready = base / "ready.json"
    ready.unlink(missing_ok=True)
    args = ("--profile", profile_name, "--port", str(port), "--root", str(root))
    args += ("--ready-file", str(ready), "--faults", ",".join(faults), "--abi", abi)
    args += ("--adb-keys", str(keys_file), "--delegate", generation)
    proc = _spawn(list(args), log)
    _wait_ready(proc, ready, log, profile_name, timeout)
    serial = f"{BIND_HOST}:{port}"
    record = VirtualRecord(
        serial=serial,
        port=port,
        pid=proc.pid,
        profile=profile_name,
        model=profile.model,
        root=str(root),
        log=str(log),
        servers=[s.address for s in servers],
        faults=list(effective),
        started=time.time(),
        abi=abi,
        delegate=generation,
    )
    (registry_dir() / f"{port}.json").write_text(json.dumps(asdict(record), indent=2))
    try:
        for server in servers:
            connect(
                server,
                serial,
                timeout=timeout,
                accept=("unauthorized",) if "unauthorized" in effective else ("device",),
            )
        if chaos is not None:  # after adb connect: a phone that starts offline never registers
            apply_chaos(serial, chaos)
    except Exception:
        stop(serial)
        raise
    return record


def find(selector: str) -> list[VirtualRecord]:
    records = list_virtual()
    if selector == "all":
        return records
    return [r for r in records if selector in (r.serial, str(r.port), r.profile, r.model)]


def stop(selector: str, wipe: bool = False) -> list[VirtualRecord]:
    records = find(selector)
    if not records:
        raise VirtualPhoneError(f"no running virtual phone matches {selector!r}")
    for record in records:
        for address in record.servers:
            host, _, port = address.rpartition(":")
            with contextlib.suppress(Exception):
                disconnect(AdbServer(host, int(port)), record.serial)
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _pid_alive(record.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(record.pid, os.WNOHANG)
            time.sleep(0.05)
        if _pid_alive(record.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
        (registry_dir() / f"{record.port}.json").unlink(missing_ok=True)
        if wipe:
            import shutil

            shutil.rmtree(Path(record.root).parent, ignore_errors=True)
    return records


def set_chaos(selector: str, rules: list[dict]) -> None:
    """Inject faults into a running virtual phone's benchmark_model (tests, issue 8's chaos).

    Each rule: ``{"match": "<substring of --graph>", "action": "crash|hang|truncate",
    "when": "latency|accuracy|any"}``; an empty list clears them.
    """
    records = find(selector)
    if not records:
        raise VirtualPhoneError(f"no running virtual phone matches {selector!r}")
    for record in records:
        path = Path(record.root) / ".harness" / "virtual.json"
        data = json.loads(path.read_text())
        data["chaos"] = list(rules)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


def _records(selector: str) -> list[VirtualRecord]:
    records = find(selector)
    if not records:
        raise VirtualPhoneError(f"no running virtual phone matches {selector!r}")
    return records


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def set_link_chaos(
    selector: str,
    *,
    drop: Drop | dict | None = None,
    slow: int | None = None,
    storage_free: int | None = None,
    offline: float | None = None,
) -> None:
    """Link faults of a running phone (chaos.py), replacing the previous ones; no argument
    clears them. ``drop``: ``Drop(after=N, times=1, match="", op="any|send|recv")``; ``slow``:
    bytes/s; ``storage_free``: bytes pushes may still write; ``offline``: seconds from now."""
    faults = LinkFaults.from_json(
        {
            k: v
            for k, v in {
                "drop": asdict(drop) if isinstance(drop, Drop) else drop,
                "slow": slow,
                "storage_free": storage_free,
                "offline_until": None if offline is None else time.time() + offline,
            }.items()
            if v is not None
        }
    )
    for record in _records(selector):
        _write_json(Path(record.root) / CHAOS_FILE, faults.to_json())


def apply_chaos(selector: str, spec: ChaosSpec) -> None:
    """Replace every fault of a running phone with ``spec`` (``harness virtual chaos``)."""
    for record in _records(selector):
        _write_json(Path(record.root) / CHAOS_FILE, spec.link.to_json())
        set_chaos(record.serial, list(spec.bm_rules))
