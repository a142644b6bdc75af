"""Virtual phones through the real adb server (the binary bundled with adbutils)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pytest

from harness.devices import adb
from harness.devices.device import Device, quote
from harness.errors import DeviceNotFound, DeviceTimeout, DeviceUnavailable, ExitCode
from harness.virtual import manager
from tests.conftest import adb_cli


def _device(server, pattern: str) -> Device:
    (entry,) = adb.select_devices(adb.list_devices([server]), [pattern])
    return Device(entry)


@pytest.fixture(scope="module")
def two_phones(phones):
    """SM-G973F and SM-G973U (tests/conftest.py), shared by the tests of this module."""
    return phones


def test_plain_adb_lists_both_phones(adb_server, two_phones):
    out = adb_cli(adb_server, "devices", "-l").stdout
    f, u = two_phones
    assert f"{f.serial}" in out and "model:SM_G973F" in out
    assert f"{u.serial}" in out and "model:SM_G973U" in out
    shell = adb_cli(adb_server, "-s", f.serial, "shell", "getprop ro.product.model")
    assert shell.stdout.strip() == "SM-G973F"


def test_select_by_prefix_and_ambiguity(adb_server, two_phones):
    entries = adb.list_devices([adb_server])
    (f,) = adb.select_devices(entries, ["SM-G973F"])
    assert f.serial == two_phones[0].serial
    with pytest.raises(DeviceNotFound, match="ambiguous") as err:
        adb.select_devices(entries, ["SM-G973"])
    assert "SM-G973F" in str(err.value) and "SM-G973U" in str(err.value)
    assert {e.serial for e in adb.select_devices(entries, ["SM-G973*"])} == {
        two_phones[0].serial,
        two_phones[1].serial,
    }


def test_probe_reads_soc_and_gpu(adb_server, two_phones):
    info = _device(adb_server, "SM-G973F").probe()
    assert (info.soc, info.gpu, info.virtual) == ("Exynos 9820", "Mali-G76", True)
    assert info.cores == 8 and max(info.cpu_max_khz) == 2730000
    assert info.battery_level == 87 and info.battery_temp_c == pytest.approx(29.5)
    assert info.sdk == 31 and info.abi == "harness-virtual"
    u = _device(adb_server, "SM-G973U").probe()
    assert (u.soc, u.egl) == ("Snapdragon 855", "adreno") and "Adreno" in u.gpu


def test_exit_codes_and_streams(adb_server, two_phones):
    dev = _device(adb_server, "SM-G973F")
    ok = dev.shell("echo out; echo err >&2")
    assert (ok.returncode, ok.out, ok.err) == (0, "out\n", "err\n")
    assert dev.shell("exit 7").returncode == 7
    assert dev.shell("kill -9 $$").returncode == 137


def test_timeout_kills_the_command(adb_server, two_phones):
    dev = _device(adb_server, "SM-G973F")
    marker = "/data/local/tmp/late-marker"
    dev.shell(["rm", "-f", marker])
    start = time.monotonic()
    with pytest.raises(DeviceTimeout, match="timed out"):
        dev.shell(f"sleep 1.5; touch {quote(marker)}", timeout=0.5)
    assert time.monotonic() - start < 1.4
    time.sleep(1.6)
    assert dev.shell(["ls", marker]).returncode != 0  # killed before it could touch


def test_push_pull_50mb_and_cache(adb_server, two_phones, tmp_path):
    dev = _device(adb_server, "SM-G973F")
    src = tmp_path / "blob with space.bin"
    src.write_bytes(os.urandom(50 * 1024 * 1024))
    remote = "/data/local/tmp/harness test/blob with space.bin"
    first = dev.push(src, remote)
    assert first.bytes_sent == src.stat().st_size
    assert first.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    again = dev.push(src, remote)
    assert again.bytes_sent == 0 and again.skipped
    back = tmp_path / "back.bin"
    assert dev.pull(remote, back) == src.stat().st_size
    assert hashlib.sha256(back.read_bytes()).hexdigest() == first.sha256
    on_phone = dev.shell(f"sha256sum {quote(remote)}").out.split()[0]
    assert on_phone == first.sha256
    # A changed file is pushed again, even with the same size.
    with open(src, "r+b") as handle:
        handle.write(b"changed!")
    assert dev.push(src, remote).bytes_sent == src.stat().st_size


def test_pull_missing_file_is_one_line_error(adb_server, two_phones, tmp_path):
    dev = _device(adb_server, "SM-G973F")
    with pytest.raises(Exception, match="pull of /data/local/tmp/nope failed") as err:
        dev.pull("/data/local/tmp/nope", tmp_path / "x")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x*"))


def test_sync_is_confined_to_the_sandbox(adb_server, two_phones, tmp_path):
    dev = _device(adb_server, "SM-G973F")
    root = two_phones[0].root
    outside = tmp_path / "secret.txt"
    outside.write_text("host secret")
    # ".." stops at the device's root, as in a chroot: the host file is not reachable.
    escape = "/data/local/tmp/../../../../../../../../" + str(outside).lstrip("/")
    assert dev.read_file(escape) is None
    src = tmp_path / "payload"
    src.write_text("x")
    dev.push(src, "/data/../../../../tmp/harness-escape-test", use_cache=False)
    assert not os.path.exists("/tmp/harness-escape-test")
    assert os.path.exists(os.path.join(root, "tmp", "harness-escape-test"))
    # A symlink planted by a shell command cannot carry a transfer out of the sandbox.
    assert dev.shell(["ln", "-sfn", str(tmp_path), "/data/local/tmp/hostdir"]).ok
    assert dev.read_file("/data/local/tmp/hostdir/secret.txt") is None
    with pytest.raises(Exception, match="outside the device"):
        dev.push(src, "/data/local/tmp/hostdir/planted", use_cache=False)
    assert not (tmp_path / "planted").exists()


def test_recovers_after_restart(adb_server, start_phone):
    record = start_phone("SM-G973F")
    dev = _device(adb_server, record.serial)
    assert dev.shell("echo before").out == "before\n"
    os.kill(record.pid, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server notices the dead transport
        states = {e.serial: e.state for e in adb.list_devices([adb_server])}
        if states.get(record.serial) != "device":
            break
        time.sleep(0.1)
    with pytest.raises(DeviceUnavailable):
        dev.shell("echo during", timeout=5)
    manager.list_virtual()  # prunes the dead record
    start_phone("SM-G973F", port=record.port)
    assert _device(adb_server, record.serial).shell("echo after").out == "after\n"


def test_unauthorized_phone_is_a_clear_error(adb_server, start_phone):
    record = start_phone("SM-A105F", faults=("unauthorized",))
    entries = adb.list_devices([adb_server])
    assert {e.serial: e.state for e in entries}[record.serial] == "unauthorized"
    with pytest.raises(DeviceUnavailable, match="unauthorized: accept the USB debugging prompt"):
        adb.select_devices(entries, [record.serial])


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_devices_json_and_errors(adb_server, two_phones):
    import json

    run = _cli("devices", "--device", "SM-G973F", "--json")
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)
    assert row["info"]["soc"] == "Exynos 9820" and row["info"]["gpu"] == "Mali-G76"
    assert row["info"]["virtual"] is True
    amb = _cli("devices", "--device", "SM-G973")
    assert amb.returncode == ExitCode.DEVICE_NOT_FOUND
    assert amb.stderr.count("\n") == 1 and "ambiguous" in amb.stderr
    none = _cli("probe", "--device", "Pixel")
    assert none.returncode == ExitCode.DEVICE_NOT_FOUND and "no device matches" in none.stderr
    unknown = _cli("virtual", "start", "--profile", "SM-XXXX")
    assert unknown.returncode == ExitCode.USAGE and "available: " in unknown.stderr
    busy = _cli("virtual", "start", "--profile", "SM-G973F", "--port", str(two_phones[0].port))
    assert busy.returncode == ExitCode.VIRTUAL and "in use" in busy.stderr
    assert busy.stderr.count("\n") == 1


def test_cli_no_adb_server(tmp_path):
    from tests.conftest import free_port

    # 127.0.0.2 is loopback but not "this host's default server": it is never auto-started.
    run = _cli("devices", "--adb", f"127.0.0.2:{free_port()}")
    assert run.returncode == ExitCode.ADB_UNAVAILABLE
    assert "no adb server reachable" in run.stderr and run.stderr.count("\n") == 1


def test_device_lock_excludes_a_second_holder(adb_server, two_phones):
    from harness.errors import DeviceBusy

    dev = _device(adb_server, "SM-G973F")
    with dev.lock():
        with pytest.raises(DeviceBusy, match="busy"):
            dev.lock().acquire()
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "from harness.devices.lock import DeviceId, DeviceLock;"
                f"DeviceLock(DeviceId({dev.entry.server.address!r}, {dev.serial!r})).acquire()",
            ],
            capture_output=True,
            text=True,
        )
        assert probe.returncode != 0 and "busy" in probe.stderr
    with dev.lock():  # released: can be taken again
        pass
