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


def test_phone_state_reads(phone):
    from harness.bench.phone import read_state

    state = read_state(phone)
    assert state.battery_level is not None and 0 <= state.battery_level <= 100
    assert state.charging is not None and state.screen_on is not None
    assert state.hottest_c is None or 0 < state.hottest_c < 120


def _pinned(kind, abi):
    from harness import assets
    from harness.errors import AssetError

    try:
        return assets.usable(abi, kind)
    except AssetError as exc:  # not an error of the phone: say what to run
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from harness.convert import testing
    from harness.convert.pipeline import ConvertOptions, convert_model
    from harness.convert.variants import Head, Precision

    folder = tmp_path_factory.mktemp("device") / "tiny"
    testing.make_model_folder(folder, size=64, n_train=64, n_val=8, epochs=2, seed=1)
    convert_model(
        folder, ConvertOptions(heads=(Head.SIGMOID,), precisions=(Precision.FP32,), accuracy=False)
    )
    return folder


@pytest.mark.parametrize("runner", ["shell", "apk"])
def test_bench_real_abi_path(phone, tiny_model, tmp_path, runner):
    """The real path end to end: pinned binary (and APK) pushed, run, parsed, stored."""
    from harness import assets
    from harness.bench.run import BenchOptions, run_bench

    info = phone.probe()
    binary = _pinned(assets.AssetKind.BINARY, info.abi)
    expected = binary.actual_sha256
    if runner == "apk":
        expected = _pinned(assets.AssetKind.APK, info.abi).actual_sha256
    out = run_bench(
        BenchOptions(
            model=str(tiny_model),
            devices=(phone.serial,),
            store=str(tmp_path / "r.db"),
            delegates="cpu,gpu",
            runs=5,
            warmup=1,
            repeats=2,
            images=2,
            runner=runner,
        )
    )
    assert len(out.cells) == 2
    for cell in out.cells:
        assert cell.measured, cell.reason
        assert cell.latency.runner == runner and cell.latency.extra["runner_sha256"] == expected
        assert cell.latency.avg_ms > 0 and cell.delegation.virtual is False
