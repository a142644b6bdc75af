from __future__ import annotations

import pytest

from harness.virtual.sandbox import Sandbox, SandboxEscape


def test_rewrite_only_device_roots(tmp_path):
    sb = Sandbox(tmp_path)
    r = str(sb.root)
    assert sb.rewrite_command("ls /data/local/tmp") == f"ls {r}/data/local/tmp"
    assert sb.rewrite_command("cat '/sdcard/a b'") == f"cat '{r}/sdcard/a b'"
    assert (
        sb.rewrite_command("x=/sys/class; echo >/dev/null") == f"x={r}/sys/class; echo >/dev/null"
    )
    assert sb.rewrite_command("ls /tmp/data/x /database") == "ls /tmp/data/x /database"


def test_host_path_confinement(tmp_path):
    sb = Sandbox(tmp_path / "root")
    (tmp_path / "root").mkdir()
    assert sb.host_path("/data/local/tmp/m.tflite") == sb.root / "data/local/tmp/m.tflite"
    assert sb.host_path("/../../etc/passwd") == sb.root / "etc/passwd"
    assert sb.host_path("/storage/emulated/0/x") == sb.root / "sdcard/x"
    (sb.root / "data").mkdir()
    (sb.root / "data" / "out").symlink_to(tmp_path)
    with pytest.raises(SandboxEscape):
        sb.host_path("/data/out/secret")


def test_scrub(tmp_path):
    sb = Sandbox(tmp_path)
    assert sb.scrub(f"Loaded model {sb.root}/data/m".encode()) == b"Loaded model /data/m"
