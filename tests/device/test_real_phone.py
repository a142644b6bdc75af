"""Opt-in tests on a real phone: ``pytest -m device`` (optionally HARNESS_TEST_DEVICE=SERIAL).

Deselected by default (pyproject addopts). They assert the same contracts as the virtual-phone
integration tests, on hardware.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from harness.devices import adb
from harness.devices.device import Device

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def phone() -> Device:
    entries = [e for e in adb.list_devices(adb.resolve_servers()) if e.state == "device"]
    wanted = os.environ.get("HARNESS_TEST_DEVICE")
    real = [e for e in entries if not e.serial.startswith("127.0.0.1:")]
    (entry,) = adb.select_devices(real, [wanted] if wanted else [])
    return Device(entry)


def test_probe_is_real(phone):
    info = phone.probe()
    assert not info.virtual and info.abi in ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")
    assert info.model != "unknown" and info.sdk and info.cores > 0


def test_exit_codes(phone):
    assert phone.shell("exit 7").returncode == 7
    assert phone.shell("kill -9 $$").returncode == 137


def test_push_pull_and_cache(phone, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    remote = "/data/local/tmp/harness-test/blob.bin"
    first = phone.push(src, remote)
    assert first.bytes_sent == src.stat().st_size
    assert phone.push(src, remote).bytes_sent == 0
    back = tmp_path / "back.bin"
    phone.pull(remote, back)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == first.sha256
    phone.shell(["rm", "-rf", "/data/local/tmp/harness-test"])
