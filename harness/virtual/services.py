"""Services a virtual phone offers on an OPENed stream: shell (v1, v2), exec, sync."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import stat as stat_mod
from pathlib import Path

from harness.devices import wire
from harness.virtual.chaos import LinkChaos
from harness.virtual.sandbox import Sandbox, SandboxEscape
from harness.virtual.transport import ServiceHandler, Stream, StreamClosed

log = logging.getLogger("harness.virtual")

_READ_CHUNK = 64 * 1024


def parse_shell_service(service: str) -> tuple[bool, str] | None:
    """``shell,v2,raw:CMD`` -> (v2, CMD); ``shell:CMD`` -> (False, CMD); else None."""
    head, sep, command = service.partition(":")
    if not sep:
        return None
    parts = head.split(",")
    if parts[0] != "shell":
        return None
    return "v2" in parts[1:], command


class Services:
    def __init__(self, sandbox: Sandbox, chaos: LinkChaos | None = None) -> None:
        self.sandbox = sandbox
        self.chaos = chaos  # link faults: drops mid-transfer, full storage

    def resolve(self, service: str) -> ServiceHandler | None:
        if service.startswith("shell"):
            parsed = parse_shell_service(service)
            if parsed is None:
                return None
            return self.shell_v2 if parsed[0] else self.shell_v1
        if service.startswith("exec:"):
            return self.exec_raw
        if service == "sync:":
            return self.sync
        return None

    # -- processes -----------------------------------------------------------------------------
    async def _spawn(self, command: str, *, merge_stderr: bool, stderr: bool = True):
        cmd = self.sandbox.rewrite_command(command) if command.strip() else "sh"
        return await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            cmd,
            cwd=self.sandbox.root,
            env=self.sandbox.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=(
                asyncio.subprocess.STDOUT
                if merge_stderr
                else asyncio.subprocess.PIPE
                if stderr
                else asyncio.subprocess.DEVNULL
            ),
            start_new_session=True,  # its own process group: a closed stream kills all of it
        )

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    @staticmethod
    def exit_status(returncode: int) -> int:
        """A killed command exits 128 + signal, as on a phone."""
        return 128 - returncode if returncode < 0 else returncode & 0xFF

    async def _pump(self, reader: asyncio.StreamReader, send, scrub: bool) -> None:
        while chunk := await reader.read(_READ_CHUNK):
            await send(self.sandbox.scrub(chunk) if scrub else chunk)

    async def _run(self, stream: Stream, proc, pumps, on_input) -> None:
        """Run pumps until the process ends; kill it if the host closes the stream first."""

        async def feed() -> None:
            try:
                while data := await stream.read():
                    await on_input(data)
            except wire.ProtocolError as exc:  # a malformed shell v2 packet: end the session
                log.warning("closing a shell stream: %s", exc)
                self._kill(proc)
                return
            if stream.closed_by_host:
                self._kill(proc)

        feeder = asyncio.create_task(feed())
        try:
            await asyncio.gather(*pumps)
            await proc.wait()
        finally:
            feeder.cancel()
            self._kill(proc)
            with contextlib.suppress(Exception):
                await proc.wait()

    # -- shell ---------------------------------------------------------------------------------
    async def shell_v2(self, stream: Stream, service: str) -> None:
        _v2, command = parse_shell_service(service)  # type: ignore[misc]
        proc = await self._spawn(command, merge_stderr=False)
        decoder = wire.ShellPacketReader()

        async def on_input(data: bytes) -> None:
            for packet_id, payload in decoder.feed(data):
                if packet_id == wire.SHELL_STDIN and proc.stdin and not proc.stdin.is_closing():
                    with contextlib.suppress(ConnectionError):
                        proc.stdin.write(payload)
                        await proc.stdin.drain()
                elif packet_id == wire.SHELL_CLOSE_STDIN and proc.stdin:
                    proc.stdin.close()

        async def out(data: bytes) -> None:
            await stream.write(wire.encode_shell_packet(wire.SHELL_STDOUT, data))

        async def err(data: bytes) -> None:
            await stream.write(wire.encode_shell_packet(wire.SHELL_STDERR, data))

        await self._run(
            stream,
            proc,
            [self._pump(proc.stdout, out, True), self._pump(proc.stderr, err, True)],
            on_input,
        )
        status = self.exit_status(proc.returncode or 0)
        await stream.write(wire.encode_shell_packet(wire.SHELL_EXIT, bytes([status])))

    async def shell_v1(self, stream: Stream, service: str) -> None:
        _v2, command = parse_shell_service(service)  # type: ignore[misc]
        proc = await self._spawn(command, merge_stderr=True)
        await self._run(
            stream, proc, [self._pump(proc.stdout, stream.write, True)], self._stdin_writer(proc)
        )

    async def exec_raw(self, stream: Stream, service: str) -> None:
        proc = await self._spawn(service[len("exec:") :], merge_stderr=False, stderr=False)
        await self._run(
            stream, proc, [self._pump(proc.stdout, stream.write, False)], self._stdin_writer(proc)
        )

    @staticmethod
    def _stdin_writer(proc):
        async def on_input(data: bytes) -> None:
            if proc.stdin and not proc.stdin.is_closing():
                with contextlib.suppress(ConnectionError):
                    proc.stdin.write(data)
                    await proc.stdin.drain()

        return on_input

    # -- sync ----------------------------------------------------------------------------------
    async def sync(self, stream: Stream, service: str) -> None:
        out = _Coalescing(stream)
        try:
            await self._sync_loop(out)
        finally:
            if not stream.closed_by_host:
                await out.flush()

    async def _sync_loop(self, stream: _Coalescing) -> None:
        while True:
            try:
                tag, length = wire.decode_sync_header(await stream.read_exactly(8))
            except StreamClosed:
                return
            if tag == b"QUIT":
                return
            if length > 4096:
                await self._fail(stream, "path too long")
                return
            path = (await stream.read_exactly(length)).decode("utf-8", errors="replace")
            if self.chaos is not None:
                self.chaos.refresh()
            handler = {
                b"STAT": self._stat_v1,
                b"STA2": self._stat_v2,
                b"LST2": self._stat_v2,
                b"LIST": self._list,
                b"LIS2": self._list,
                b"SEND": self._send,
                b"RECV": self._recv,
            }.get(tag)
            if handler is None:
                await self._fail(stream, f"unknown sync request {tag!r}")
                return
            await handler(stream, tag, path)
            await stream.flush()  # one reply per request, coalesced like adbd's socket reads

    @staticmethod
    async def _fail(stream: Stream, message: str) -> None:
        await stream.write(wire.encode_sync(b"FAIL", message.encode()))

    def _lookup(self, path: str) -> Path | None:
        try:
            return self.sandbox.host_path(path)
        except SandboxEscape:
            return None

    async def _stat_v1(self, stream: Stream, tag: bytes, path: str) -> None:
        host = self._lookup(path)
        try:
            st = os.lstat(host) if host else None
        except OSError:
            st = None
        if st is None:
            await stream.write(wire.STAT_V1.pack(b"STAT", 0, 0, 0))
        else:
            await stream.write(
                wire.STAT_V1.pack(
                    b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime)
                )
            )

    async def _stat_v2(self, stream: Stream, tag: bytes, path: str) -> None:
        host = self._lookup(path)
        try:
            if host is None:
                raise PermissionError(errno.EACCES, "outside device")
            st = os.lstat(host) if tag == b"LST2" else os.stat(host)
            await stream.write(_stat2(tag, 0, st))
        except OSError as exc:
            await stream.write(
                wire.STAT_V2.pack(tag, exc.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            )

    async def _list(self, stream: Stream, tag: bytes, path: str) -> None:
        host = self._lookup(path)
        entries = []
        with contextlib.suppress(OSError, TypeError):
            entries = sorted(os.scandir(host), key=lambda e: e.name)
        out = bytearray()
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            name = entry.name.encode("utf-8", errors="surrogateescape")
            if tag == b"LIST":
                out += (
                    wire.DENT_V1.pack(
                        b"DENT",
                        st.st_mode & 0xFFFFFFFF,
                        st.st_size & 0xFFFFFFFF,
                        int(st.st_mtime),
                        len(name),
                    )
                    + name
                )
            else:
                out += _dent2(st, name)
        out += wire.DENT_V1.pack(b"DONE", 0, 0, 0, 0) if tag == b"LIST" else _done_v2()
        await stream.write(bytes(out))

    async def _send(self, stream: Stream, tag: bytes, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        if not path:
            path, mode_text = spec, "33188"
        host = self._lookup(path)
        tmp = None
        error = None if host is not None else f"{path}: Permission denied (outside the device)"
        handle = None
        received = 0
        chaos = self.chaos
        try:
            if host is not None:
                try:
                    host.parent.mkdir(parents=True, exist_ok=True)
                    tmp = host.with_name(f".{host.name}.harness-partial")
                    handle = open(tmp, "wb")  # noqa: SIM115 - closed in finally
                except OSError as exc:
                    error = f"{path}: {exc.strerror}"
            while True:
                rtag, length = wire.decode_sync_header(await stream.read_exactly(8))
                if rtag == b"DATA":
                    if length > wire.SYNC_DATA_MAX:
                        error = error or "DATA chunk larger than 64 KiB"
                        await self._fail(stream, error)
                        raise StreamClosed()
                    data = await stream.read_exactly(length)
                    received += length
                    if chaos is not None and chaos.should_drop(path, "send", received):
                        stream.drop()
                        raise StreamClosed()
                    if chaos is not None and not chaos.storage_allows(received):
                        error = error or f"{path}: No space left on device"
                    if handle and error is None:
                        try:
                            handle.write(data)
                        except OSError as exc:
                            error = f"{path}: {exc.strerror}"
                elif rtag == b"DONE":
                    mtime = length
                    break
                else:
                    await self._fail(stream, f"unexpected {rtag!r} in SEND")
                    raise StreamClosed()
            if handle:
                handle.close()
                handle = None
            if error is None and tmp is not None and host is not None:
                try:
                    os.replace(tmp, host)
                    os.chmod(host, int(mode_text) & 0o7777 if mode_text.isdigit() else 0o644)
                    if mtime:
                        os.utime(host, (mtime, mtime))
                    if chaos is not None:
                        chaos.stored(received)
                except OSError as exc:
                    error = f"{path}: {exc.strerror}"
            if error:
                await self._fail(stream, error)
            else:
                await stream.write(wire.encode_sync(b"OKAY", 0))
        finally:
            if handle:
                handle.close()
            if tmp is not None and tmp.exists():
                tmp.unlink()

    async def _recv(self, stream: Stream, tag: bytes, path: str) -> None:
        host = self._lookup(path)
        try:
            if host is None:
                raise PermissionError(errno.EACCES, "Permission denied")
            sent = 0
            with open(host, "rb") as handle:
                while chunk := handle.read(wire.SYNC_DATA_MAX):
                    chaos = self.chaos
                    if chaos is not None and chaos.should_drop(path, "recv", sent + len(chunk)):
                        keep = max(0, chaos.faults.drop.after - sent)  # type: ignore[union-attr]
                        if keep:  # the part that made it through before the link died
                            await stream.write(wire.encode_sync(b"DATA", chunk[:keep]))
                        await stream.flush()
                        stream.drop()
                        raise StreamClosed()
                    await stream.write(wire.encode_sync(b"DATA", chunk))
                    sent += len(chunk)
        except OSError as exc:
            await self._fail(stream, f"{path}: {exc.strerror}")
            return
        await stream.write(wire.encode_sync(b"DONE", 0))


class _Coalescing:
    """Buffers sync records and writes them in max-payload WRTEs (as adbd's transport reads
    its sync socket), so a small reply is one packet instead of a round trip per record."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @property
    def closed_by_host(self) -> bool:
        return self.stream.closed_by_host

    async def read_exactly(self, n: int) -> bytes:
        return await self.stream.read_exactly(n)

    async def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= self.stream.conn.max_payload:
            await self.flush()

    async def flush(self) -> None:
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            await self.stream.write(data)

    def drop(self) -> None:
        """Chaos: the link dies here (what was flushed still reaches the host)."""
        self.buf.clear()
        self.stream.conn.drop()


def _stat_fields(st: os.stat_result) -> tuple[int, ...]:
    """The stat part shared by STA2/LST2 replies and DNT2 entries."""
    return (
        st.st_dev,
        st.st_ino,
        st.st_mode & 0xFFFFFFFF,
        st.st_nlink & 0xFFFFFFFF,
        st.st_uid,
        st.st_gid,
        st.st_size,
        int(st.st_atime),
        int(st.st_mtime),
        int(st.st_ctime),
    )


def _stat2(tag: bytes, error: int, st: os.stat_result) -> bytes:
    return wire.STAT_V2.pack(tag, error, *_stat_fields(st))


def _dent2(st: os.stat_result, name: bytes) -> bytes:
    return wire.DENT_V2.pack(b"DNT2", 0, *_stat_fields(st), len(name)) + name


def _done_v2() -> bytes:
    return wire.DENT_V2.pack(b"DONE", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


__all__ = ["Services", "parse_shell_service", "stat_mod"]
