"""Other local accounts: a running virtual phone and its fork server serve only their user.

The phone authenticates like adbd with ``ro.adb.secure=1`` (AUTH TOKEN, a signature by a key
it was started for); its fork server checks the peer's uid. Raw clients (tests/reliability/
raw_adb.py) try what another account could: a key the phone was not started for, no key at
all, and (when the tests run as root, as in CI) a process that dropped to uid 65534.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.devices import adb, adbkey
from harness.virtual import manager
from harness.virtual.benchmark_model import client as bm_client
from tests.conftest import free_port
from tests.reliability import raw_adb
from tests.reliability.conftest import processes_in_sandbox

NOBODY = 65534


@pytest.fixture(scope="module")
def foreign_key(tmp_path_factory) -> tuple[adbkey.PrivateKey, str]:
    """A real adb key pair (``adb keygen``) that no phone here was started for."""
    path = tmp_path_factory.mktemp("foreign") / "adbkey"
    subprocess.run([adb.adb_binary(), "keygen", str(path)], check=True, capture_output=True)
    private = adbkey.decode_private_pem(path.read_text())
    public = Path(f"{path}.pub").read_text().strip()
    assert adbkey.decode_public(public).n == private.n
    return private, public


def _attack_with(key: tuple[adbkey.PrivateKey, str], port: int, command: str) -> dict:
    private, public = key
    return raw_adb.attack(
        port, command, sign=lambda token: adbkey.sign(private, token), public_key=public.encode()
    )


def test_a_key_the_phone_was_not_started_for_gets_no_shell(phone, foreign_key, tmp_path):
    marker = tmp_path / "planted"
    result = _attack_with(foreign_key, phone.port, f"shell:touch {marker}")
    # A token, a fresh token after the refused signature, nothing for the offered key, and
    # the OPEN of an unauthenticated connection closes it: no CNXN, no OKAY, no shell.
    assert result["seen"] == ["AUTH 1", "AUTH 1", "closed"], result
    assert not marker.exists()


def test_no_key_gets_no_shell(phone, tmp_path):
    marker = tmp_path / "planted"
    result = raw_adb.attack(phone.port, f"shell:touch {marker}")  # random bytes as signature
    assert result["seen"] == ["AUTH 1", "AUTH 1", "closed"], result
    result = raw_adb.RawAdb(phone.port)  # OPEN straight after CNXN, no AUTH at all
    result.send(raw_adb.CNXN, 0x01000001, 4096, b"host::")
    result.send(raw_adb.OPEN, 1, 0, f"shell:touch {marker}\0".encode())
    assert [result.recv()[:2], result.recv()] == [("AUTH", 1), None]
    result.close()
    assert not marker.exists()


def test_the_key_it_was_started_for_gets_a_shell(adb_server, foreign_key):
    """The control: the same client with a key the phone was started for is served (so the
    refusals above come from the key, not from a client the phone cannot talk to)."""
    public = adbkey.decode_public(foreign_key[1])
    record = manager.start("SM-G973F", port=free_port(), servers=[adb_server], extra_keys=[public])
    try:
        command = "shell:echo served; grep NoNewPrivs /proc/self/status"
        result = _attack_with(foreign_key, record.port, command)
        assert result["seen"][:2] == ["AUTH 1", "CNXN"], result
        assert "served" in result["output"]
        # What it runs cannot gain privileges (setuid programs): docs/virtual-phone.md.
        assert result["output"].split("NoNewPrivs:")[1].split()[0] == "1", result["output"]
        keys = Path(record.root).parent / "adb_keys"
        assert adbkey.encode_public(public) in keys.read_text()
        assert len(keys.read_text().splitlines()) >= 2  # the adb server's key too
    finally:
        manager.stop(record.serial)


def _wait_fork_server(root: str) -> str:
    address = bm_client.address(str(Path(root).resolve()))
    deadline = time.monotonic() + 60
    while address not in Path("/proc/net/unix").read_text().replace("@", "\0"):
        assert time.monotonic() < deadline, "the phone's fork server never listened"
        time.sleep(0.05)
    return address


def _as_nobody(work) -> dict:
    """Run ``work()`` in a forked process that dropped to uid/gid 65534; its JSON result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        out = b"{}"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = json.dumps({"uid": os.getuid(), **work()}).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = json.dumps({"error": repr(exc)}).encode()
        finally:
            view = memoryview(out)
            while view:
                view = view[os.write(write_end, view) :]
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root (CI is)")
def test_another_account_reaches_neither_the_phone_nor_its_fork_server(phone, models_on):
    address = _wait_fork_server(phone.root)
    root = Path(phone.root).resolve()
    tmp = root / "data" / "local" / "tmp"
    planted = tmp / "planted.raw"
    marker = Path("/tmp") / f"harness-planted-{os.getpid()}"
    request = {  # a valid request, every path on the phone: only the uid is wrong
        "argv": [f"--graph={models_on(tmp)}", "--num_runs=1", f"--output_filepath={planted}"],
        "cwd": str(tmp),
        "env": {"HARNESS_VIRTUAL_ROOT": str(root)},
        "umask": 0,
        "cpus": None,
    }

    def work() -> dict:
        return {
            "adb": raw_adb.attack(phone.port, f"shell:touch {marker}"),
            "fork": raw_adb.fork_server_request(address, request),
        }

    result = _as_nobody(work)
    assert result.get("uid") == NOBODY, result
    assert result["adb"]["seen"] == ["AUTH 1", "AUTH 1", "closed"], result
    assert result["fork"] == "", result  # hung up on: no 'exit', no 'plain'
    assert not marker.exists() and not planted.exists()
    fork_servers = processes_in_sandbox(phone.root, fork_server=True)
    assert len(fork_servers) == 1, fork_servers  # still serving, and it forked nothing
    kids = Path(f"/proc/{fork_servers[0]}/task/{fork_servers[0]}/children").read_text()
    assert kids.split() == []
    # The same request from this (the phone's) user is served: the refusal was the uid.
    assert raw_adb.fork_server_request(address, request) == "exit 0"
    assert planted.exists()


@pytest.fixture
def models_on(bench_model):
    """Copies the bench tests' tiny model to a folder on the phone; returns its path."""

    def place(folder: Path) -> Path:
        target = folder / "m.tflite"
        target.write_bytes((bench_model / "variants" / "sigmoid-fp32.tflite").read_bytes())
        return target

    return place


def test_the_phone_authorizes_the_key_its_adb_server_uses(tmp_path):
    """An adb server started with another HOME (so another key) than this process: the phone
    reads that server's environment and authorizes its key, and the server connects."""
    server = adb.AdbServer("127.0.0.1", free_port())
    home = tmp_path / "server home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(server.port)}
    env.pop("ADB_VENDOR_KEYS", None)
    started = subprocess.run(
        [adb.adb_binary(), "-P", str(server.port), "start-server"], env=env, capture_output=True
    )
    assert started.returncode == 0, started.stderr
    try:
        assert adb.server_environ(server)["HOME"] == str(home)
        server_key = adbkey.decode_public((home / ".android" / "adbkey.pub").read_text())
        own = adbkey.load_public_keys(adbkey.key_files(os.environ))
        assert server_key not in own  # the test's precondition: two different keys
        record = manager.start("SM-G973F", port=free_port(), servers=[server])
        try:
            keys = (Path(record.root).parent / "adb_keys").read_text().split("\n")
            assert adbkey.encode_public(server_key) in keys
            assert not any(adbkey.encode_public(k) in keys for k in own)
            listed = {e.serial: e.state for e in adb.list_devices([server], start=False)}
            assert listed[record.serial] == "device"
        finally:
            manager.stop(record.serial)
    finally:
        adb.kill_server(server)
