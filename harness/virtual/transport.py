"""The device side of the ADB transport: connection, streams and flow control.

One :class:`Connection` per TCP connection from an adb server. Streams are opened by the host
with OPEN; each gets a service coroutine (shell, exec, sync) that reads with
:meth:`Stream.read` and writes with :meth:`Stream.write`. Flow control follows adbd: every WRTE
we receive is acknowledged with OKAY (after it is queued, so a slow service applies
backpressure through a bounded queue) and we keep at most one unacknowledged WRTE per stream.

Authentication follows adbd with ``ro.adb.secure=1``: every CNXN is answered with AUTH TOKEN
(20 random bytes); a SIGNATURE that one of the phone's authorized keys verifies
(:func:`harness.devices.adbkey.verify`) brings the connection online (our CNXN), any other gets
a fresh token; a host's RSAPUBLICKEY (the "allow USB debugging?" prompt) is never accepted. Until
then only CNXN and AUTH are read: anything else closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from harness.devices import adbkey, wire

if TYPE_CHECKING:
    from harness.virtual.chaos import LinkChaos

log = logging.getLogger("harness.virtual")

ServiceHandler = Callable[["Stream", str], Awaitable[None]]
ServiceResolver = Callable[[str], ServiceHandler | None]


_QUEUE_SOFT_LIMIT = 4


class StreamClosed(Exception):
    """The host closed the stream (or the connection went away)."""


class Stream:
    def __init__(self, conn: Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._owed_ack = False
        self._can_send = asyncio.Event()
        self._can_send.set()
        self._buffer = bytearray()
        self._pos = 0  # read cursor into _buffer (compacted lazily: no memmove per record)
        self.closed_by_host = False
        self._closed = False
        self.task: asyncio.Task | None = None

    # -- host -> device -------------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        """Queue a payload; acknowledge it now unless the service is lagging (backpressure).

        The read loop never blocks on one stream, so other streams keep flowing; a lagging
        stream's OKAY is sent when its service catches up (see :meth:`_take`).
        """
        self._incoming.put_nowait(data)
        if self._incoming.qsize() <= _QUEUE_SOFT_LIMIT:
            self.conn.send(wire.A_OKAY, self.local_id, self.remote_id)
        else:
            self._owed_ack = True

    async def _take(self) -> bytes | None:
        data = await self._incoming.get()
        if self._owed_ack and self._incoming.qsize() <= _QUEUE_SOFT_LIMIT and not self.conn.lost:
            self._owed_ack = False
            self.conn.send(wire.A_OKAY, self.local_id, self.remote_id)
        return data

    def _host_closed(self) -> None:
        self.closed_by_host = True
        self._can_send.set()
        self._incoming.put_nowait(None)

    async def read(self) -> bytes:
        """Next payload from the host; b"" once the host has closed the stream."""
        if self._pos < len(self._buffer):
            data = bytes(self._buffer[self._pos :])
            self._buffer.clear()
            self._pos = 0
            return data
        if self.closed_by_host and self._incoming.empty():
            return b""
        data = await self._take()
        return data or b""

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) - self._pos < n:
            if self.closed_by_host and self._incoming.empty():
                raise StreamClosed()
            data = await self._take()
            if data is None:
                raise StreamClosed()
            if self._pos:
                del self._buffer[: self._pos]
                self._pos = 0
            self._buffer += data
        out = bytes(self._buffer[self._pos : self._pos + n])
        self._pos += n
        if self._pos == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        return out

    # -- device -> host -------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        step = self.conn.max_payload
        for start in range(0, len(view), step):
            await self._can_send.wait()
            if self.closed_by_host or self._closed:
                raise StreamClosed()
            self._can_send.clear()
            chunk = bytes(view[start : start + step])
            await self.conn.throttle(len(chunk))
            self.conn.send(wire.A_WRTE, self.local_id, self.remote_id, chunk)
            await self.conn.drain()

    def _acknowledged(self) -> None:
        self._can_send.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.conn.lost:
            self.conn.send(wire.A_CLSE, self.local_id, self.remote_id)
            with contextlib.suppress(ConnectionError):
                await self.conn.drain()
        self.conn.streams.pop(self.local_id, None)


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        banner: bytes,
        resolve: ServiceResolver,
        keys: tuple[adbkey.PublicKey, ...] = (),
        chaos: LinkChaos | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.banner = banner
        self.resolve = resolve
        self.max_payload = wire.MAX_PAYLOAD
        self.streams: dict[int, Stream] = {}
        self._next_id = 1
        self.lost = False
        self.keys = keys  # the authorized public keys (none: the RSA prompt is never answered)
        self.online = False  # a signature was verified since the last CNXN
        self.token = b""  # the AUTH TOKEN the host must sign
        self.failed_auth = 0
        self.chaos = chaos  # link faults (chaos.py): throttling, drops

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if not self.lost:
            self.writer.write(wire.encode_message(command, arg0, arg1, data))

    async def drain(self) -> None:
        if not self.lost:
            await self.writer.drain()

    async def throttle(self, nbytes: int) -> None:
        """A slow link (chaos ``slow``): payload bytes take ``nbytes / speed`` seconds."""
        if self.chaos is not None and (delay := self.chaos.delay(nbytes)) > 0:
            await asyncio.sleep(delay)

    def drop(self, abort: bool = False) -> None:
        """Close the TCP connection (chaos): after flushing what was written, or at once."""
        self.lost = True
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()

    async def run(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(wire.HEADER_SIZE)
                command, arg0, arg1, length = wire.decode_header(header)
                data = await self.reader.readexactly(length) if length else b""
                if command == wire.A_WRTE:
                    await self.throttle(length)
                await self._dispatch(command, arg0, arg1, data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except wire.ProtocolError as exc:
            log.warning("closing connection: %s", exc)
        finally:
            self.lost = True
            for stream in list(self.streams.values()):
                stream._host_closed()
                if stream.task:
                    stream.task.cancel()
            self.writer.close()

    async def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == wire.A_CNXN:
            self.max_payload = max(4096, min(arg1, wire.MAX_PAYLOAD))
            # A new CNXN resets the transport: forget every stream, authenticate again.
            for stream in list(self.streams.values()):
                stream._host_closed()
            self.streams.clear()
            self.online = False
            await self._send_token()
        elif command == wire.A_AUTH:
            await self._auth(arg0, data)
        elif not self.online:
            # adbd ignores a transport's packets until it is online; a client that sends them
            # anyway is not an adb server: drop it.
            raise wire.ProtocolError(f"command {command:#x} before authentication")
        elif command == wire.A_OPEN:
            await self._open(arg0, data.rstrip(b"\0").decode("utf-8", errors="replace"))
        elif command == wire.A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.send(wire.A_CLSE, 0, arg0)
                return
            stream._deliver(data)
        elif command == wire.A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream._acknowledged()
        elif command == wire.A_CLSE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream._host_closed()
                stream._closed = True  # the host already closed: no CLSE back
                self.streams.pop(arg1, None)
        # STLS from the host is not expected: we never offer it.

    async def _send_token(self) -> None:
        self.token = os.urandom(adbkey.TOKEN_SIZE)
        self.send(wire.A_AUTH, wire.AUTH_TOKEN, 0, self.token)
        await self.drain()

    async def _auth(self, kind: int, data: bytes) -> None:
        if self.online or not self.token:
            return  # not asked for: ignored, as adbd does
        if kind == wire.AUTH_SIGNATURE:
            token, self.token = self.token, b""  # one signature per token
            if any(adbkey.verify(key, token, data) for key in self.keys):
                self.online = True
                self.failed_auth = 0
                self.send(wire.A_CNXN, wire.A_VERSION, wire.MAX_PAYLOAD, self.banner)
                await self.drain()
                return
            self.failed_auth += 1
            if self.failed_auth > 256:  # adbd slows a client that keeps guessing
                await asyncio.sleep(1)
            await self._send_token()
        elif kind == wire.AUTH_RSAPUBLICKEY:
            # adbd would ask the user "Allow USB debugging?"; nobody answers a virtual phone's
            # prompt, so the host stays "unauthorized" (keys are given when the phone starts).
            log.warning("an adb host offered an unknown key: left unauthorized")

    async def _open(self, remote_id: int, service: str) -> None:
        if self.chaos is not None:
            self.chaos.refresh()
            if self.chaos.offline:  # chaos: gone before the stream could open
                log.warning("chaos: offline, closing the connection instead of opening %r", service)
                self.drop(abort=True)
                return
        handler = self.resolve(service)
        if handler is None or remote_id == 0:
            self.send(wire.A_CLSE, 0, remote_id)
            return
        local_id = self._next_id
        self._next_id += 1
        stream = Stream(self, local_id, remote_id)
        self.streams[local_id] = stream
        self.send(wire.A_OKAY, local_id, remote_id)
        await self.drain()
        stream.task = asyncio.create_task(self._serve(stream, handler, service))

    async def _serve(self, stream: Stream, handler: ServiceHandler, service: str) -> None:
        try:
            await handler(stream, service)
        except (StreamClosed, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug in a service must not take the phone down
            log.exception("service %r failed", service)
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
