from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.devices import wire


def test_message_roundtrip():
    raw = wire.encode_message(wire.A_OPEN, 3, 0, b"shell:ls\0")
    msg = wire.decode_message(raw)
    assert (msg.name, msg.arg0, msg.arg1, msg.data) == ("OPEN", 3, 0, b"shell:ls\0")


def test_header_magic_and_limits():
    raw = bytearray(wire.encode_message(wire.A_WRTE, 1, 2, b"abc"))
    raw[20] ^= 0xFF
    with pytest.raises(wire.ProtocolError, match="bad magic"):
        wire.decode_message(bytes(raw))
    with pytest.raises(wire.ProtocolError, match="truncated"):
        wire.decode_header(b"\0" * 10)
    big = wire.encode_message(wire.A_WRTE, 1, 2, b"x" * 10)
    with pytest.raises(wire.ProtocolError, match="exceeds max payload"):
        wire.decode_header(big[:24], max_payload=5)
    with pytest.raises(wire.ProtocolError, match="unknown command"):
        wire.decode_header(b"ABCD" + b"\0" * 20)


def test_banner_roundtrip_and_forbidden_colon():
    banner = wire.make_banner({"ro.product.model": "SM-G973F"}, ["shell_v2", "stat_v2"])
    assert banner == b"device::ro.product.model=SM-G973F;features=shell_v2,stat_v2"
    kind, props = wire.parse_banner(banner)
    assert kind == "device" and props["ro.product.model"] == "SM-G973F"
    assert props["features"] == "shell_v2,stat_v2"
    with pytest.raises(wire.ProtocolError):
        wire.make_banner({"ro.product.model": "a:b"}, [])


def test_shell_packets_reassemble_across_chunks():
    stream = (
        wire.encode_shell_packet(wire.SHELL_STDOUT, b"hello")
        + wire.encode_shell_packet(wire.SHELL_STDERR, b"")
        + wire.encode_shell_packet(wire.SHELL_EXIT, bytes([7]))
    )
    reader = wire.ShellPacketReader()
    packets = []
    for i in range(0, len(stream), 3):
        packets += reader.feed(stream[i : i + 3])
    assert packets == [(1, b"hello"), (2, b""), (3, b"\x07")]
    assert reader.pending == 0


def test_sync_records():
    assert wire.encode_sync(b"STAT", b"/x") == b"STAT\x02\x00\x00\x00/x"
    assert wire.decode_sync_header(wire.encode_sync(b"DONE", 5)) == (b"DONE", 5)
    with pytest.raises(wire.ProtocolError):
        wire.decode_sync_header(b"DON")
    assert wire.STAT_V2.size == 72 and wire.DENT_V2.size == 76


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_only_raise_protocol_error(data):
    for fn in (
        wire.decode_message,
        lambda d: wire.decode_header(d[:24]),
        wire.decode_sync_header,
        lambda d: wire.ShellPacketReader().feed(d),
        wire.parse_banner,
    ):
        with contextlib.suppress(wire.ProtocolError):
            fn(data)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(wire.COMMAND_NAMES)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=256),
    st.integers(0, 300),
)
def test_truncated_valid_messages(command, a0, a1, data, cut):
    raw = wire.encode_message(command, a0, a1, data)
    piece = raw[: min(cut, len(raw))]
    if len(piece) == len(raw):
        assert wire.decode_message(piece).data == data
    else:
        with pytest.raises(wire.ProtocolError):
            wire.decode_message(piece)
