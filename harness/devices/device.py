"""One phone: shell with timeout and exit code, hash-cached push, pull, probe, lock.

Shell commands go through shell protocol v2 (separate stdout/stderr and the exit code) with a
wall-clock deadline; on timeout the stream is closed, which kills the command on the phone.
Pushes use the sync protocol directly (64 KiB DATA records, hashing while sending) and leave a
marker ``<dir>/.harness-cache/<name>.sha256`` beside the file, so an unchanged file is never
pushed twice: the check costs one sync round trip, no shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import adbutils

from harness.devices import hostconn, wire
from harness.devices.adb import DeviceEntry, connect, ensure_server, wait_for_device
from harness.devices.cache import LocalHashCache
from harness.devices.hostconn import open_service
from harness.devices.info import PROBE_SCRIPT, DeviceInfo, parse_probe
from harness.devices.lock import DeviceLock
from harness.devices.retry import TRANSFER, Backoff, retry
from harness.errors import DeviceTimeout, DeviceUnavailable, HarnessError

T = TypeVar("T")

_CHUNK = wire.SYNC_DATA_MAX
_BLOCK = 16 * _CHUNK  # 1 MiB read and sent per system call


def quote(arg: str | os.PathLike) -> str:
    """Quote one argument for the device's POSIX shell (mksh/toybox)."""
    return shlex.quote(os.fspath(arg))


def sh_join(args: Sequence[str | os.PathLike]) -> str:
    return " ".join(quote(a) for a in args)


@dataclass(frozen=True)
class ShellResult:
    command: str
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class PushResult:
    remote: str
    size: int
    sha256: str
    bytes_sent: int

    @property
    def skipped(self) -> bool:
        return self.bytes_sent == 0 and self.size > 0


def _marker_path(remote: str) -> str:
    parent, _, name = remote.rpartition("/")
    return f"{parent}/.harness-cache/{name}.sha256"


def _translate(exc: Exception, serial: str) -> HarnessError:
    text = " ".join(str(exc).split())
    if isinstance(exc, socket.timeout | adbutils.AdbTimeout | TimeoutError):
        return DeviceTimeout(f"{serial}: timed out ({text or 'no answer'})")
    if "unauthorized" in text:
        return DeviceUnavailable(f"{serial} is unauthorized: accept the USB debugging prompt")
    return DeviceUnavailable(f"{serial} is not reachable: {text or type(exc).__name__}")


class Device:
    def __init__(self, entry: DeviceEntry, hash_cache: LocalHashCache | None = None) -> None:
        self.entry = entry
        self.serial = entry.serial
        self._adb = entry.server.client().device(serial=entry.serial)
        self._hashes = hash_cache or LocalHashCache()
        self._features: set[str] | None = None
        self._info: DeviceInfo | None = None
        self.retries = 0  # operations retried after a transient failure (see retrying)

    def __repr__(self) -> str:
        return f"Device({self.serial!r}, {self.entry.model_code!r})"

    # -- transport ---------------------------------------------------------------------------
    def _open(self, service: str, timeout: float) -> socket.socket:
        server = self.entry.server
        return open_service(server.host, server.port, self.serial, service, timeout=timeout)

    @property
    def features(self) -> set[str]:
        if self._features is None:
            try:
                self._features = set(self._adb.get_features().split(","))
            except (adbutils.AdbError, OSError) as exc:
                raise _translate(exc, self.serial) from exc
        return self._features

    # -- shell -------------------------------------------------------------------------------
    def shell(
        self,
        command: str | Sequence[str],
        timeout: float = 60.0,
        stdin: bytes | None = None,
    ) -> ShellResult:
        """Run a command; never raises for a non-zero exit (the caller judges the result).

        A list is quoted argument by argument; a string is sent as is (quote paths with
        :func:`quote`). Raises DeviceTimeout after ``timeout`` seconds (the command is killed
        on the phone by closing its stream) and DeviceUnavailable if the phone goes away.
        """
        cmd = command if isinstance(command, str) else sh_join(command)
        if "shell_v2" not in self.features:
            return self._shell_v1(cmd, timeout)
        start = time.monotonic()
        deadline = start + timeout
        sock = self._open(f"shell,v2,raw:{cmd}", timeout=min(timeout, 30.0))
        out, err = bytearray(), bytearray()
        decoder = wire.ShellPacketReader()
        try:
            if stdin is not None:
                sock.sendall(wire.encode_shell_packet(wire.SHELL_STDIN, stdin))
                sock.sendall(wire.encode_shell_packet(wire.SHELL_CLOSE_STDIN, b""))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError()
                sock.settimeout(remaining)
                data = hostconn.recv(sock, 256 * 1024)
                if not data:
                    raise DeviceUnavailable(f"{self.serial}: connection lost during {cmd[:60]!r}")
                for packet_id, payload in decoder.feed(data):
                    if packet_id == wire.SHELL_STDOUT:
                        out += payload
                    elif packet_id == wire.SHELL_STDERR:
                        err += payload
                    elif packet_id == wire.SHELL_EXIT:
                        code = payload[0] if payload else 255
                        return ShellResult(
                            cmd, code, bytes(out), bytes(err), time.monotonic() - start
                        )
        except TimeoutError as exc:
            raise DeviceTimeout(
                f"{self.serial}: command timed out after {timeout:g}s and was killed: {cmd[:80]}"
            ) from exc
        except wire.ProtocolError as exc:
            raise DeviceUnavailable(f"{self.serial}: bad shell stream ({exc})") from exc
        except OSError as exc:
            raise _translate(exc, self.serial) from exc
        finally:
            sock.close()

    def _shell_v1(self, cmd: str, timeout: float) -> ShellResult:
        start = time.monotonic()
        marker = "@@harness-exit:"
        try:
            raw = self._adb.shell(f"{cmd}; echo {marker}$?", timeout=timeout, encoding=None)
        except (adbutils.AdbError, OSError) as exc:
            raise _translate(exc, self.serial) from exc
        head, _, tail = raw.rpartition(marker.encode())
        code = int(tail.strip() or b"255") if tail.strip().isdigit() else 255
        return ShellResult(cmd, code, head, b"", time.monotonic() - start)

    # -- sync --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _sync(self, timeout: float = 120.0) -> Iterator[_SyncSession]:
        sock = self._open("sync:", timeout=min(timeout, 30.0))
        session = _SyncSession(sock, self.serial)
        try:
            yield session
            with contextlib.suppress(OSError):
                sock.sendall(wire.encode_sync(b"QUIT", 0))
        except TimeoutError as exc:
            raise DeviceTimeout(f"{self.serial}: file transfer timed out") from exc
        except OSError as exc:
            raise _translate(exc, self.serial) from exc
        finally:
            sock.close()

    def push(
        self, local: str | os.PathLike, remote: str, mode: int = 0o644, use_cache: bool = True
    ) -> PushResult:
        """Push a file unless the phone already has the same content at ``remote``."""
        return self.push_many([(local, remote)], mode=mode, use_cache=use_cache)[0]

    def push_many(
        self,
        pairs: Sequence[tuple[str | os.PathLike, str]],
        mode: int = 0o644,
        use_cache: bool = True,
    ) -> list[PushResult]:
        """Push several files in one sync session (one connection, no shell)."""
        with self._sync() as sync:
            return [self._push_one(sync, Path(lo), re, mode, use_cache) for lo, re in pairs]

    def _push_one(
        self, sync: _SyncSession, path: Path, remote: str, mode: int, use_cache: bool
    ) -> PushResult:
        try:
            st = path.stat()
        except OSError as exc:
            raise HarnessError(f"cannot read {path}: {exc.strerror}") from exc
        known = self._hashes.get(path, st) if use_cache else None
        marker_path = _marker_path(remote)
        if use_cache:
            remote_size = sync.stat_size(remote)
            marker = sync.read_small(marker_path) if remote_size == st.st_size else None
            if marker:
                parts = marker.decode("ascii", errors="replace").split()
                if len(parts) == 2 and parts[1] == str(st.st_size):
                    sha = known or self._hashes.compute(path, st)
                    if parts[0] == sha:
                        return PushResult(remote, st.st_size, sha, 0)
        with open(path, "rb") as handle:
            # A hash known from the local cache is not recomputed; new content is hashed
            # while it is sent.
            sha = sync.send(handle, remote, mode, known_sha=known)
        self._hashes.put(path, st, sha)
        if use_cache:
            sync.send_bytes(f"{sha} {st.st_size}\n".encode(), marker_path, 0o644)
        return PushResult(remote, st.st_size, sha, st.st_size)

    def pull(self, remote: str, local: str | os.PathLike) -> int:
        """Pull a file (written to a temp name, then renamed). Returns its size."""
        target = Path(local)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial")
        try:
            with self._sync() as sync, open(tmp, "wb") as handle:
                size = sync.recv(remote, handle)
            os.replace(tmp, target)
            return size
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def read_file(self, remote: str) -> bytes | None:
        with self._sync() as sync:
            return sync.read_small(remote, limit=None)

    def stat_size(self, remote: str) -> int | None:
        with self._sync() as sync:
            return sync.stat_size(remote)

    # -- info, lock, reconnect ---------------------------------------------------------------
    def probe(self, refresh: bool = False) -> DeviceInfo:
        if self._info is None or refresh:
            result = self.shell(PROBE_SCRIPT, timeout=30)
            self._info = parse_probe(self.serial, result.out)
        return self._info

    def lock(self, wait: float = 0.0) -> DeviceLock:
        """A per-device lock: two harness processes never measure on one phone at once."""
        return DeviceLock(self.entry.id, wait=wait)

    def reconnect(self, timeout: float = 20.0) -> None:
        """Bring the phone back after it dropped: restart a local adb server that died, then
        ``adb connect`` a network (or virtual) phone again, or wait for a USB phone to be
        listed again. DeviceUnavailable if it is not back within ``timeout`` seconds."""
        ensure_server(self.entry.server)
        if self.entry.is_tcp:
            connect(self.entry.server, self.serial, timeout=timeout)
        else:
            wait_for_device(self.entry.server, self.serial, timeout=timeout)
        self._features = None

    def retrying(self, fn: Callable[[], T], what: str, policy: Backoff = TRANSFER) -> T:
        """``fn()`` with bounded retries and a reconnect before each retry (retry.py). Only
        for operations that are safe to repeat: transfers, read-only or idempotent commands."""

        def recover(delay: float) -> None:
            self.reconnect(timeout=max(1.0, delay))

        def count(_what: str, _exc: HarnessError) -> None:
            self.retries += 1

        return retry(
            fn, what=f"{self.serial}: {what}", policy=policy, recover=recover, on_retry=count
        )


class _SyncSession:
    """Client side of the sync protocol on one open ``sync:`` stream."""

    def __init__(self, sock: socket.socket, serial: str) -> None:
        self.sock = sock
        self.serial = serial
        sock.settimeout(120.0)

    def _request(self, tag: bytes, path: str) -> None:
        self.sock.sendall(wire.encode_sync(tag, path.encode("utf-8")))

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = hostconn.recv(self.sock, n - len(buf))
            if not chunk:
                raise DeviceUnavailable(f"{self.serial}: connection lost during a file transfer")
            buf += chunk
        return bytes(buf)

    def _fail(self, length: int, what: str) -> HarnessError:
        message = self._read_exact(length).decode("utf-8", errors="replace")
        return HarnessError(f"{self.serial}: {what} failed: {message}")

    def stat_size(self, path: str) -> int | None:
        self._request(b"STAT", path)
        tag, mode, size, mtime = wire.STAT_V1.unpack(self._read_exact(wire.STAT_V1.size))
        if tag != b"STAT":
            raise DeviceUnavailable(f"{self.serial}: bad STAT reply {tag!r}")
        return None if mode == 0 and size == 0 and mtime == 0 else size

    def recv(self, path: str, handle) -> int:
        self._request(b"RECV", path)
        total = 0
        while True:
            tag, length = wire.decode_sync_header(self._read_exact(8))
            if tag == b"DATA":
                handle.write(self._read_exact(length))
                total += length
            elif tag == b"DONE":
                return total
            elif tag == b"FAIL":
                raise self._fail(length, f"pull of {path}")
            else:
                raise DeviceUnavailable(f"{self.serial}: bad sync reply {tag!r}")

    def read_small(self, path: str, limit: int | None = 4096) -> bytes | None:
        """Whole content of a (small) file, or None if it cannot be read."""
        self._request(b"RECV", path)
        buf = bytearray()
        while True:
            tag, length = wire.decode_sync_header(self._read_exact(8))
            if tag == b"DATA":
                buf += self._read_exact(length)
            elif tag == b"DONE":
                return bytes(buf) if limit is None or len(buf) <= limit else None
            elif tag == b"FAIL":
                self._read_exact(length)
                return None
            else:
                raise DeviceUnavailable(f"{self.serial}: bad sync reply {tag!r}")

    def send(self, handle, path: str, mode: int, known_sha: str | None = None) -> str:
        """SEND a stream as 64 KiB DATA records; returns the sha256 of what was sent
        (``known_sha`` when the caller already knows it: then nothing is hashed).

        Reads 1 MiB blocks and sends all their records in one ``sendmsg`` (no copies); each
        block is hashed on a worker thread while it is being sent (hashlib releases the GIL).
        """
        digest = hashlib.sha256()
        self._request(b"SEND", f"{path},{0o100000 | mode}")
        header = struct.Struct("<4sI")
        buffers = [bytearray(_BLOCK), bytearray(_BLOCK)]
        pending = None
        with ThreadPoolExecutor(max_workers=1) as hasher:
            turn = 0
            while n := handle.readinto(buffers[turn]):
                block = memoryview(buffers[turn])[:n]
                pending = None if known_sha else hasher.submit(digest.update, block)
                parts: list = []
                for start in range(0, n, _CHUNK):
                    piece = block[start : start + _CHUNK]
                    parts += [header.pack(b"DATA", len(piece)), piece]
                self._sendmsg(parts)
                if pending is not None:
                    pending.result()  # keep hash order; the buffer is reused next turn
                turn ^= 1
        self.sock.sendall(header.pack(b"DONE", int(time.time())))
        tag, length = wire.decode_sync_header(self._read_exact(8))
        if tag == b"FAIL":
            raise self._fail(length, f"push to {path}")
        if tag != b"OKAY":
            raise DeviceUnavailable(f"{self.serial}: bad sync reply {tag!r}")
        return known_sha or digest.hexdigest()

    def _sendmsg(self, parts: list) -> None:
        """Send a list of buffers with as few system calls as possible, without copies."""
        views = [memoryview(p).cast("B") for p in parts]
        while views:
            sent = self.sock.sendmsg(views[:512])
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]

    def send_bytes(self, data: bytes, path: str, mode: int) -> str:
        import io

        return self.send(io.BytesIO(data), path, mode)
