"""The ADB wire formats, as pure functions (FACTS.md §4).

Used by both sides: the virtual phone decodes transport messages and encodes replies; the
harness's own sync and shell-v2 clients encode requests and decode replies. Decoders raise
:class:`ProtocolError` (and only that) on malformed input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453
COMMAND_NAMES = {
    A_CNXN: "CNXN",
    A_AUTH: "AUTH",
    A_OPEN: "OPEN",
    A_OKAY: "OKAY",
    A_CLSE: "CLSE",
    A_WRTE: "WRTE",
    A_STLS: "STLS",
}
A_VERSION = 0x01000001  # "skip checksum" protocol version
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3  # AUTH arg0
MAX_PAYLOAD = 1024 * 1024
HEADER_SIZE = 24
_HEADER = struct.Struct("<6I")

# shell protocol v2 packet ids
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = range(6)
_SHELL_HEADER = struct.Struct("<BI")

SYNC_DATA_MAX = 64 * 1024
_SYNC_HEADER = struct.Struct("<4sI")


class ProtocolError(ValueError):
    """Malformed bytes on an ADB connection or stream."""


@dataclass(frozen=True, slots=True)
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, hex(self.command))


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def encode_message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    """Header + payload. The checksum is 0: A_VERSION >= 0x01000001 skips it."""
    return _HEADER.pack(command, arg0, arg1, len(data), 0, command ^ 0xFFFFFFFF) + data


def decode_header(raw: bytes, max_payload: int = MAX_PAYLOAD) -> tuple[int, int, int, int]:
    """Validate a 24-byte header; return (command, arg0, arg1, data_length)."""
    if len(raw) != HEADER_SIZE:
        raise ProtocolError(f"truncated header: {len(raw)} of {HEADER_SIZE} bytes")
    command, arg0, arg1, length, _check, magic = _HEADER.unpack(raw)
    if command not in COMMAND_NAMES:
        raise ProtocolError(f"unknown command 0x{command:08x}")
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for {COMMAND_NAMES[command]}")
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes exceeds max payload {max_payload}")
    return command, arg0, arg1, length


def decode_message(raw: bytes, max_payload: int = MAX_PAYLOAD) -> Message:
    """Decode one complete message (header + payload) from ``raw``."""
    command, arg0, arg1, length = decode_header(raw[:HEADER_SIZE], max_payload)
    data = raw[HEADER_SIZE:]
    if len(data) != length:
        raise ProtocolError(f"payload is {len(data)} bytes, header says {length}")
    return Message(command, arg0, arg1, bytes(data))


def parse_banner(data: bytes) -> tuple[str, dict[str, str]]:
    """``"device::k=v;k=v;features=a,b"`` -> ("device", {k: v})."""
    text = data.rstrip(b"\0").decode("utf-8", errors="replace")
    kind, _, rest = text.partition(":")
    _serial, _, props_text = rest.partition(":")
    props = {}
    for item in props_text.split(";"):
        if "=" in item:
            key, _, value = item.partition("=")
            props[key] = value
    return kind, props


def make_banner(props: dict[str, str], features: list[str]) -> bytes:
    for key, value in props.items():
        if ":" in value or ";" in value:
            raise ProtocolError(f"banner value for {key} may not contain ':' or ';'")
    items = [f"{k}={v}" for k, v in props.items()] + ["features=" + ",".join(features)]
    return ("device::" + ";".join(items)).encode()


# --- shell protocol v2 ---------------------------------------------------------------------


def encode_shell_packet(packet_id: int, data: bytes) -> bytes:
    return _SHELL_HEADER.pack(packet_id, len(data)) + data


class ShellPacketReader:
    """Incremental decoder: feed bytes, get complete (id, payload) packets."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= 5:
            packet_id, length = _SHELL_HEADER.unpack_from(self._buf)
            if packet_id > SHELL_WINDOW:
                raise ProtocolError(f"unknown shell packet id {packet_id}")
            if len(self._buf) < 5 + length:
                break
            out.append((packet_id, bytes(self._buf[5 : 5 + length])))
            del self._buf[: 5 + length]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


# --- sync protocol -------------------------------------------------------------------------


def encode_sync(tag: bytes, payload: bytes | int = b"") -> bytes:
    """A sync record: 4-byte tag + u32; with bytes, the u32 is their length and they follow."""
    if isinstance(payload, int):
        return _SYNC_HEADER.pack(tag, payload)
    return _SYNC_HEADER.pack(tag, len(payload)) + payload


def decode_sync_header(raw: bytes) -> tuple[bytes, int]:
    if len(raw) != 8:
        raise ProtocolError(f"truncated sync record: {len(raw)} of 8 bytes")
    return _SYNC_HEADER.unpack(raw)


# STAT v1 reply: "STAT" mode size mtime
STAT_V1 = struct.Struct("<4sIII")
# STA2/LST2 reply: "STA2" error dev ino mode nlink uid gid size atime mtime ctime
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
# DENT: "DENT" mode size mtime namelen name
DENT_V1 = struct.Struct("<4sIIII")
# DNT2: "DNT2" error dev ino mode nlink uid gid size atime mtime ctime namelen name
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")
