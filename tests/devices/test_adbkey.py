"""adb key files and the AUTH signature, against keys made by the real adb (``adb keygen``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.devices import adb, adbkey


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "adbkey"
    subprocess.run([adb.adb_binary(), "keygen", str(path)], check=True, capture_output=True)
    return path


def test_public_key_file_round_trips(keypair):
    text = Path(f"{keypair}.pub").read_text().strip()
    key = adbkey.decode_public(text)
    assert key.n.bit_length() == 2048 and key.e == 65537 and key.comment
    assert adbkey.encode_public(key) == text  # byte for byte what adb wrote


def test_private_key_matches_and_signs(keypair):
    private = adbkey.decode_private_pem(keypair.read_text())
    public = adbkey.decode_public(Path(f"{keypair}.pub").read_text())
    assert (private.n, private.e) == (public.n, public.e)
    token = os.urandom(adbkey.TOKEN_SIZE)
    signature = adbkey.sign(private, token)
    assert adbkey.verify(public, token, signature)
    assert not adbkey.verify(public, os.urandom(adbkey.TOKEN_SIZE), signature)
    assert not adbkey.verify(public, token, bytes([signature[0] ^ 1]) + signature[1:])
    assert not adbkey.verify(public, token, signature[:-1])
    assert not adbkey.verify(public, token, public.n.to_bytes(256, "big"))  # >= n
    # The token is the digest, not hashed again: the recovered block ends with it.
    recovered = pow(int.from_bytes(signature, "big"), public.e, public.n).to_bytes(256, "big")
    assert recovered.endswith(bytes.fromhex("3021300906052b0e03021a05000414") + token)


def test_malformed_public_keys_are_refused(keypair):
    text = Path(f"{keypair}.pub").read_text().strip()
    blob, _, _ = text.partition(" ")
    for bad in ("", "not base64!", blob[:-8], "QUFB " + text):
        with pytest.raises(adbkey.KeyFormatError):
            adbkey.decode_public(bad)
    import base64

    raw = bytearray(base64.b64decode(blob))
    raw[4] ^= 1  # n0inv no longer matches n
    with pytest.raises(adbkey.KeyFormatError, match="inconsistent"):
        adbkey.decode_public(base64.b64encode(bytes(raw)).decode())


def test_key_files_follow_home_and_vendor_keys(tmp_path, keypair):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "lab.adb_key").write_text(keypair.read_text())  # no .pub: derived
    (vendor / "ignored.txt").write_text("x")
    single = tmp_path / "single"
    single.write_text("not a key")
    env = {"HOME": str(tmp_path / "home"), "ADB_VENDOR_KEYS": f"{vendor}:{single}"}
    files = adbkey.key_files(env)
    assert files == [tmp_path / "home" / ".android" / "adbkey", vendor / "lab.adb_key", single]
    keys = adbkey.load_public_keys(files)  # the missing user key and the junk are skipped
    public = adbkey.decode_public(Path(f"{keypair}.pub").read_text())
    assert [(k.n, k.e) for k in keys] == [(public.n, public.e)]


def test_a_phone_with_no_key_to_authorize_is_not_started(tmp_path, monkeypatch):
    """No adb key anywhere (HOME without .android, no vendor keys): exit 8 before any phone
    process starts, instead of a phone that nobody can use."""
    from harness.errors import VirtualPhoneError
    from harness.virtual import manager

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ADB_VENDOR_KEYS", raising=False)
    monkeypatch.delenv("ANDROID_USER_HOME", raising=False)
    remote = adb.AdbServer("192.0.2.1", 5037)  # not local: its environment cannot be read
    with pytest.raises(VirtualPhoneError, match="no adb key to authorize"):
        manager._write_keys(tmp_path / "adb_keys", [remote], [])
    assert not (tmp_path / "adb_keys").exists()
