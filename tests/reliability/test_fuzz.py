"""Fuzzing (hypothesis): decoders and parsers never raise anything but their documented error.

- raw-output decoder (``harness.convert.reference.decode_output(s)``): ModelError / UsageError only;
- the virtual phone's protocol decoders, fed through a real TCP connection: transport
  messages (random and truncated), sync requests, shell v2 packets: the phone closes a bad
  connection and keeps serving the next good one, and logs no traceback;
- device output that is not UTF-8, through the getprop/dumpsys parsers and the log parser;
- sandbox path confinement for any path.

The wire codec, the info parsers and the log parser are also fuzzed on text in
tests/devices/test_wire.py, tests/devices/test_info.py and tests/runner/test_logparse.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.convert.reference import decode_output, decode_outputs
from harness.convert.specs import (
    Activation,
    OutputSpec,
    Quantization,
    Semantics,
    infer_output_spec,
)
from harness.devices import adb, adbkey, info, wire
from harness.devices.device import Device
from harness.errors import ModelError, UsageError
from harness.runner import parse_log
from harness.virtual import manager
from harness.virtual.profiles import VIRTUAL_FEATURES
from harness.virtual.sandbox import Sandbox, SandboxEscape
from tests.conftest import CORRECT_GPU, free_port

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ_TCP = settings(FUZZ, max_examples=150)  # each example is a TCP conversation with the phone

# -- raw-output decoder --------------------------------------------------------------------------

DTYPES = ("float32", "float16", "uint8", "int8", "int32", "int64")
dims = st.integers(min_value=0, max_value=6)
quant = st.one_of(
    st.none(),
    st.builds(
        Quantization,
        scale=st.floats(allow_nan=True, allow_infinity=True, width=32),
        zero_point=st.integers(-300, 300),
    ),
)


@st.composite
def inferred_specs(draw):
    """Specs as the bench builds them from a model (infer_output_spec)."""
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=5)))
    try:
        return infer_output_spec(
            name="out",
            index=0,
            shape=shape,
            dtype=draw(st.sampled_from(DTYPES)),
            quantization=draw(quant),
            activation=draw(st.one_of(st.none(), st.sampled_from(list(Activation)))),
            foreground_channel=draw(st.one_of(st.none(), st.integers(-2, 6))),
        )
    except UsageError:
        return None  # a model the bench refuses up front


edited_specs = st.builds(  # what a hand-edited variants.json may say
    OutputSpec,
    name=st.just("out"),
    index=st.integers(-1, 3),
    shape=st.lists(dims, min_size=0, max_size=5).map(tuple),
    dtype=st.sampled_from(DTYPES),
    semantics=st.sampled_from(list(Semantics)),
    activation=st.sampled_from(list(Activation)),
    channels=st.integers(-1, 6),
    foreground_channel=st.one_of(st.none(), st.integers(-3, 7)),
    quantization=quant,
)


def _raw(draw, spec_dtype: str):
    data = draw(st.binary(max_size=600))
    if draw(st.booleans()):
        return np.frombuffer(data, np.uint8)  # bytes pulled from a device
    dtype = np.dtype(spec_dtype)
    usable = len(data) - len(data) % dtype.itemsize
    return np.frombuffer(data[:usable], dtype)


@FUZZ
@given(st.one_of(inferred_specs(), edited_specs), st.data())
def test_raw_output_decoder_only_raises_documented_errors(spec, data):
    if spec is None:
        return
    raw = _raw(data.draw, spec.dtype)
    with np.errstate(all="ignore"):
        for decode in (decode_output, decode_outputs):
            try:
                fg, mask = decode(raw, spec)
            except (ModelError, UsageError) as exc:
                assert "\n" not in str(exc)
                continue
            assert fg.dtype == np.float32 and mask.dtype == np.uint8
            assert fg.shape == mask.shape


# -- the virtual phone's protocol decoders, over TCP ---------------------------------------------


_HOST_KEY: list[adbkey.PrivateKey] = []


def _host_key() -> adbkey.PrivateKey:
    """A real adb key pair (``adb keygen``) the fuzzed phone is started for: the raw host
    below authenticates with it, as the adb server does with its own."""
    if not _HOST_KEY:
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "adbkey"
            subprocess.run([adb.adb_binary(), "keygen", str(path)], check=True, capture_output=True)
            _HOST_KEY.append(adbkey.decode_private_pem(path.read_text()))
    return _HOST_KEY[0]


@pytest.fixture(scope="module")
def fuzz_phone(adb_server):
    record = manager.start(
        "SM-G973F",
        port=free_port(),
        servers=[adb_server],
        extra_keys=[_host_key().public()],
        faults=CORRECT_GPU,
    )
    yield record
    if manager.find(record.serial):
        manager.stop(record.serial)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _handshake(sock: socket.socket) -> None:
    """CNXN, then AUTH: sign the phone's token with the key it was started for."""
    sock.sendall(wire.encode_message(wire.A_CNXN, wire.A_VERSION, wire.MAX_PAYLOAD, b"host::\0"))
    command, arg0, _, length = wire.decode_header(_recv_exact(sock, wire.HEADER_SIZE))
    token = _recv_exact(sock, length)
    assert (command, arg0) == (wire.A_AUTH, wire.AUTH_TOKEN)
    signature = adbkey.sign(_host_key(), token)
    sock.sendall(wire.encode_message(wire.A_AUTH, wire.AUTH_SIGNATURE, 0, signature))
    header = _recv_exact(sock, wire.HEADER_SIZE)
    command, _, _, length = wire.decode_header(header)
    banner = _recv_exact(sock, length)
    assert command == wire.A_CNXN and b"features=" + ",".join(VIRTUAL_FEATURES).encode() in banner


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _converse(sock: socket.socket, quiet: float = 0.03, limit: float = 3.0) -> bool:
    """Act as a host: acknowledge the phone's WRTEs, until it is quiet for ``quiet`` seconds
    or closes the connection (True) or ``limit`` seconds pass."""
    import time

    deadline = time.monotonic() + limit
    buf = bytearray()
    sock.settimeout(quiet)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if not chunk:
            return True
        buf += chunk
        while len(buf) >= wire.HEADER_SIZE:
            command, arg0, arg1, length = wire.decode_header(bytes(buf[: wire.HEADER_SIZE]))
            if len(buf) < wire.HEADER_SIZE + length:
                break
            del buf[: wire.HEADER_SIZE + length]
            if command == wire.A_WRTE:
                with contextlib.suppress(OSError):
                    sock.sendall(wire.encode_message(wire.A_OKAY, arg1, arg0))
    return False


def _closed_by_phone(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Drain whatever the phone sends; True once it closes the connection."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def _still_serving(record) -> None:
    """A fresh connection gets a banner: the bad bytes did not take the phone down."""
    with contextlib.closing(_connect(record.port)) as sock:
        _handshake(sock)
    assert manager._pid_alive(record.pid)


def _no_tracebacks(record) -> None:
    text = Path(record.log).read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


@FUZZ_TCP
@given(st.binary(min_size=1, max_size=200))
def test_transport_random_bytes(fuzz_phone, data):
    with contextlib.closing(_connect(fuzz_phone.port)) as sock:
        sock.sendall(data)
        header_bad = len(data) >= wire.HEADER_SIZE
        if header_bad:
            try:
                wire.decode_header(data[: wire.HEADER_SIZE])
                header_bad = False
            except wire.ProtocolError:
                pass
        if header_bad:  # a malformed header: the phone hangs up
            assert _closed_by_phone(sock)
    _still_serving(fuzz_phone)


def _messages():
    """A plausible host conversation: CNXN, OPENs of harmless services, WRTEs, OKAYs,
    CLSEs with random ids and payloads."""
    services = st.one_of(
        st.sampled_from([b"sync:", b"shell,v2,raw:cat", b"shell:cat", b"exec:cat", b"reboot:"]),
        st.binary(max_size=40).filter(lambda b: not b.lstrip().startswith((b"shell", b"exec"))),
    )
    ids = st.integers(0, 4) | st.integers(0, 2**32 - 1)
    message = st.one_of(
        st.builds(lambda s: (wire.A_OPEN, 1, 0, s + b"\0"), services),
        st.builds(lambda a, b, d: (wire.A_WRTE, a, b, d), ids, ids, st.binary(max_size=120)),
        st.builds(lambda a, b: (wire.A_OKAY, a, b, b""), ids, ids),
        st.builds(lambda a, b: (wire.A_CLSE, a, b, b""), ids, ids),
        st.builds(lambda a: (wire.A_CNXN, wire.A_VERSION, a, b"host::\0"), st.integers(0, 2**20)),
        st.builds(lambda a, d: (wire.A_AUTH, a, 0, d), st.integers(0, 3), st.binary(max_size=40)),
    )
    return st.lists(message, min_size=1, max_size=12)


@FUZZ_TCP
@given(_messages(), st.integers(min_value=0, max_value=24))
def test_transport_random_and_truncated_messages(fuzz_phone, messages, cut):
    """Valid framing, random content; the last message is cut ``cut`` bytes short."""
    stream = b"".join(wire.encode_message(*m) for m in messages)
    with contextlib.closing(_connect(fuzz_phone.port)) as sock:
        _handshake(sock)
        sock.sendall(stream[: len(stream) - cut] if cut else stream)
        _converse(sock)
    _still_serving(fuzz_phone)


SYNC_TAGS = [b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2", b"SEND", b"RECV", b"DATA", b"DONE"]
paths = st.lists(
    st.sampled_from(["..", ".", "data", "local", "tmp", "fuzz", "sdcard", "x y", "\xff", ""]),
    max_size=8,
).map(lambda parts: ("/" + "/".join(parts)).encode("utf-8", "surrogateescape"))


def _sync_record(tag: bytes, payload: bytes, lie: int) -> bytes:
    return struct.pack("<4sI", tag, max(0, len(payload) + lie)) + payload


sync_records = st.lists(
    st.one_of(
        st.builds(_sync_record, st.sampled_from(SYNC_TAGS), paths, st.just(0)),
        st.builds(
            _sync_record,
            st.sampled_from(SYNC_TAGS) | st.binary(min_size=4, max_size=4),
            st.binary(max_size=64),
            st.integers(-3, 70000),
        ),
    ),
    min_size=1,
    max_size=6,
)


def _open_stream(sock: socket.socket, service: bytes) -> int | None:
    sock.sendall(wire.encode_message(wire.A_OPEN, 7, 0, service + b"\0"))
    command, arg0, _arg1, length = wire.decode_header(_recv_exact(sock, wire.HEADER_SIZE))
    _recv_exact(sock, length)
    return arg0 if command == wire.A_OKAY else None


@FUZZ_TCP
@given(sync_records)
def test_sync_requests(fuzz_phone, records):
    """Random and malformed sync requests (paths with '..', lying lengths, unknown tags)."""
    with contextlib.closing(_connect(fuzz_phone.port)) as sock:
        _handshake(sock)
        local = _open_stream(sock, b"sync:")
        assert local is not None
        payload = b"".join(records)
        for start in range(0, len(payload), 4096):
            sock.sendall(wire.encode_message(wire.A_WRTE, 7, local, payload[start : start + 4096]))
        _converse(sock)
    _still_serving(fuzz_phone)


shell_packets = st.lists(
    st.builds(
        lambda pid, data, lie: struct.pack("<BI", pid, max(0, len(data) + lie)) + data,
        st.integers(0, 255),
        st.binary(max_size=64),
        st.integers(-2, 8),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ_TCP
@given(shell_packets)
def test_shell_v2_packets(fuzz_phone, packets):
    """Random shell protocol v2 packets (unknown ids, lying lengths) on a harmless ``cat``."""
    with contextlib.closing(_connect(fuzz_phone.port)) as sock:
        _handshake(sock)
        local = _open_stream(sock, b"shell,v2,raw:cat")
        assert local is not None
        sock.sendall(wire.encode_message(wire.A_WRTE, 7, local, b"".join(packets)))
        _converse(sock)
        sock.sendall(wire.encode_message(wire.A_CLSE, 7, local))
        _converse(sock)
    _still_serving(fuzz_phone)


def test_phone_survived_the_fuzzing(fuzz_phone, adb_server):
    """After every fuzz test above: the phone serves the harness normally and logged no
    traceback (a service failing on bad input would be a bug even if it was caught)."""
    (entry,) = adb.select_devices(adb.list_devices([adb_server]), [fuzz_phone.serial])
    device = Device(entry)
    device.reconnect(timeout=20)
    assert device.shell("echo ok").out == "ok\n"
    _no_tracebacks(fuzz_phone)
    root = Path(fuzz_phone.root).resolve()
    assert not (root.parent.parent / "fuzz").exists()  # nothing landed outside the sandbox


# -- device output that is not UTF-8 -------------------------------------------------------------

device_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.sampled_from(
            [
                b"[ro.product.model]: [SM-G973F\xff\xfe]\n",
                b"[ro.soc.model]: [\x80\x81]\n",
                b"  level: 8\xc37\n",
                b"GLES: ARM, Mali-G76\xed\xa0\x80, OpenGL ES 3.2\n",
                b"cpu0 27\xff30000\n",
                b"thermal_zone0|BIG\xfe|38000\n",
                b"@@harness-section getprop\n",
                b"@@harness-section battery\n",
                b"@@harness-section gles\n",
                b"INFO: Inference timings in us: Init: 1\xff, First inference: 2\n",
                b"count=5 first=1 curr=1 min=1 max=\xff avg=1 std=0\n",
            ]
        )
        | st.binary(max_size=30),
        max_size=20,
    ).map(b"".join),
)


@FUZZ
@given(device_bytes)
def test_parsers_take_non_utf8_device_output(raw):
    text = raw.decode("utf-8", errors="replace")  # what ShellResult.out does
    info.parse_probe("s", text)
    info.parse_probe("s", "@@harness-section getprop\n" + text)
    info.parse_getprop(text)
    info.parse_battery(text)
    info.parse_gles(text)
    info.parse_snapshot(text)
    parse_log(text, text)


# -- sandbox confinement for any path ------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    root = base / "root"
    (root / "data" / "local" / "tmp").mkdir(parents=True)
    (root / "sdcard").mkdir()
    (root / "data" / "local" / "tmp" / "out").symlink_to(base)  # planted by a shell command
    (root / "data" / "inside").symlink_to("local/tmp")
    return Sandbox(root)


@FUZZ
@given(
    st.lists(
        st.sampled_from(["..", ".", "data", "local", "tmp", "out", "inside", "sdcard", "x", ""]),
        max_size=10,
    ),
    st.booleans(),
)
def test_sandbox_paths_never_escape(sandbox, parts, absolute):
    path = ("/" if absolute else "") + "/".join(parts)
    try:
        host = sandbox.host_path(path)
    except SandboxEscape:
        return
    resolved = Path(os.path.realpath(host))
    assert resolved == sandbox.root or sandbox.root in resolved.parents
