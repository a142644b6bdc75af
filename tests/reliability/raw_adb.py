"""A raw ADB client and a raw fork-server request, standard library only: what any local
account can send to a virtual phone's port and to its fork server's abstract socket."""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable

CNXN, AUTH, OPEN, OKAY, CLSE, WRTE = (
    0x4E584E43,
    0x48545541,
    0x4E45504F,
    0x59414B4F,
    0x45534C43,
    0x45545257,
)
NAMES = {CNXN: "CNXN", AUTH: "AUTH", OPEN: "OPEN", OKAY: "OKAY", CLSE: "CLSE", WRTE: "WRTE"}
_HEADER = struct.Struct("<6I")


class RawAdb:
    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        self.sock.sendall(
            _HEADER.pack(command, arg0, arg1, len(data), 0, command ^ 0xFFFFFFFF) + data
        )

    def _exactly(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv(self) -> tuple[str, int, int, bytes] | None:
        """The next message, or None once the phone closed the connection."""
        head = self._exactly(_HEADER.size)
        if head is None:
            return None
        command, arg0, arg1, length, _, _ = _HEADER.unpack(head)
        data = self._exactly(length) if length else b""
        if data is None:
            return None
        return NAMES.get(command, hex(command)), arg0, arg1, data

    def close(self) -> None:
        self.sock.close()


def _label(message: tuple[str, int, int, bytes] | None) -> str:
    if message is None:
        return "closed"
    name, arg0, _, _ = message
    return f"AUTH {arg0}" if name == "AUTH" else name


def attack(
    port: int,
    command: str,
    sign: Callable[[bytes], bytes] | None = None,
    public_key: bytes = b"",
) -> dict:
    """CNXN; answer the AUTH TOKEN with ``sign(token)`` (random bytes without a key); when
    that is refused, offer ``public_key`` as adb does; then OPEN ``command``. Returns the
    messages seen (``AUTH 1`` = a token), the stream's output and whether it was closed."""
    adb = RawAdb(port)
    seen: list[str] = []
    output = b""
    try:
        adb.send(CNXN, 0x01000001, 256 * 1024, b"host::features=shell_v2,cmd")
        message = adb.recv()
        seen.append(_label(message))
        if message is not None and message[0] == "AUTH" and message[1] == 1:
            adb.send(AUTH, 2, 0, sign(message[3]) if sign else os.urandom(256))
            message = adb.recv()
            seen.append(_label(message))
            if message is not None and message[0] == "AUTH":
                adb.send(AUTH, 3, 0, public_key + b"\0")
        adb.send(OPEN, 1, 0, command.encode() + b"\0")
        while (message := adb.recv()) is not None:
            seen.append(_label(message))
            name, arg0, _, data = message
            if name == "WRTE":
                output += data
                adb.send(OKAY, 1, arg0)
            elif name == "CLSE":
                break
        else:
            seen.append("closed")
    except (BrokenPipeError, ConnectionResetError):
        seen.append("closed")
    finally:
        adb.close()
    return {"seen": seen, "output": output.decode("utf-8", "replace")}


def fork_server_request(address: str, request: dict) -> str:
    """Send one benchmark request to a fork server; its reply ('' when it hung up)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(30)
    try:
        sock.connect(address)
        socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
        return sock.recv(64).decode("ascii", "replace")
    except (BrokenPipeError, ConnectionResetError):
        return ""
    finally:
        sock.close()
