"""adb's RSA keys: the public-key file format and the AUTH token signature (adbd's check).

adb authenticates a host to a phone with an RSA key pair: ``adbkey`` (a PEM private key,
PKCS#8 or PKCS#1) and ``adbkey.pub`` (base64 of Android's ``RSAPublicKey`` struct, then
`` user@host``). The struct is little-endian 32-bit words: ``len`` (modulus words, 64 for
2048 bits), ``n0inv`` (-1/n mod 2^32), ``n`` (len words), ``rr`` (R^2 mod n, len words),
``exponent``. On ``CNXN`` a phone with ``ro.adb.secure=1`` sends ``AUTH TOKEN`` (20 random
bytes); the host answers ``AUTH SIGNATURE``: RSA PKCS#1 v1.5 with the SHA-1 DigestInfo over
the token *as given* (OpenSSL ``RSA_sign(NID_sha1, token, 20)``: the token stands for an
already computed digest, it is not hashed again).

Where the adb server keeps its keys (adb 36, measured): ``$HOME/.android/adbkey``, created
when the server first starts, plus every key of ``ADB_VENDOR_KEYS`` (``:``-separated files,
or folders whose ``*.adb_key`` files are keys). Pure functions except :func:`key_files` and
:func:`load_public_keys`, which read those files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import pwd
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TOKEN_SIZE = 20
MODULUS_WORDS = 64  # ANDROID_PUBKEY_MODULUS_SIZE_WORDS: 2048-bit keys
_STRUCT_SIZE = 4 + 4 + 4 * MODULUS_WORDS * 2 + 4
_SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


class KeyFormatError(ValueError):
    """Not an adb key."""


@dataclass(frozen=True)
class PublicKey:
    n: int
    e: int
    comment: str = ""

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the modulus and exponent, shortened (to name a key in logs)."""
        digest = hashlib.sha256(f"{self.n:x}:{self.e:x}".encode()).hexdigest()
        return digest[:16]

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8


@dataclass(frozen=True)
class PrivateKey:
    n: int
    e: int
    d: int

    def public(self, comment: str = "") -> PublicKey:
        return PublicKey(self.n, self.e, comment)


# -- the public-key file ---------------------------------------------------------------------
def decode_public(text: str) -> PublicKey:
    """One ``adbkey.pub`` line (or an ``adb_keys`` line) -> PublicKey."""
    blob_text, _, comment = text.strip().partition(" ")
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("not base64") from exc
    if len(blob) != _STRUCT_SIZE:
        raise KeyFormatError(f"{len(blob)} bytes, expected {_STRUCT_SIZE} (a 2048-bit adb key)")
    (words,) = struct.unpack_from("<I", blob, 0)
    if words != MODULUS_WORDS:
        raise KeyFormatError(f"modulus of {words} words, expected {MODULUS_WORDS}")
    (n0inv,) = struct.unpack_from("<I", blob, 4)
    n = int.from_bytes(blob[8 : 8 + 4 * words], "little")
    rr = int.from_bytes(blob[8 + 4 * words : 8 + 8 * words], "little")
    (e,) = struct.unpack_from("<I", blob, 8 + 8 * words)
    if n.bit_length() != 32 * words or n % 2 == 0 or e < 3:
        raise KeyFormatError("not an RSA modulus/exponent")
    if (n * n0inv + 1) % 2**32 or rr != pow(2, 64 * words, n):
        raise KeyFormatError("inconsistent key (n0inv or rr do not match the modulus)")
    return PublicKey(n, e, comment.strip())


def encode_public(key: PublicKey) -> str:
    """PublicKey -> the ``adbkey.pub`` text (without a newline)."""
    if key.n.bit_length() != 32 * MODULUS_WORDS:
        raise KeyFormatError("adb keys are 2048-bit")
    n0inv = (-pow(key.n, -1, 2**32)) % 2**32
    rr = pow(2, 64 * MODULUS_WORDS, key.n)
    blob = (
        struct.pack("<II", MODULUS_WORDS, n0inv)
        + key.n.to_bytes(4 * MODULUS_WORDS, "little")
        + rr.to_bytes(4 * MODULUS_WORDS, "little")
        + struct.pack("<I", key.e)
    )
    text = base64.b64encode(blob).decode("ascii")
    return f"{text} {key.comment}" if key.comment else text


# -- the private key (PEM, DER) ---------------------------------------------------------------
def _der(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, content, next position)."""
    if pos + 2 > len(data):
        raise KeyFormatError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise KeyFormatError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise KeyFormatError("truncated DER")
    return tag, data[pos : pos + length], pos + length


def _sequence(data: bytes) -> list[tuple[int, bytes]]:
    tag, body, _ = _der(data, 0)
    if tag != 0x30:
        raise KeyFormatError("expected a DER SEQUENCE")
    items, pos = [], 0
    while pos < len(body):
        item_tag, content, pos = _der(body, pos)
        items.append((item_tag, content))
    return items


def decode_private_pem(text: str) -> PrivateKey:
    """A PEM RSA private key (``BEGIN PRIVATE KEY`` as adb writes it, or ``BEGIN RSA PRIVATE
    KEY``) -> PrivateKey."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 3 or not lines[0].startswith("-----BEGIN") or "PRIVATE KEY" not in lines[0]:
        raise KeyFormatError("not a PEM private key")
    try:
        der = base64.b64decode("".join(ln for ln in lines if not ln.startswith("-----")))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("not base64") from exc
    items = _sequence(der)
    if len(items) == 3 and items[2][0] == 0x04:  # PKCS#8: version, algorithm, OCTET STRING
        items = _sequence(items[2][1])
    if len(items) < 4 or any(tag != 0x02 for tag, _ in items[:4]):
        raise KeyFormatError("not an RSA private key")
    n, e, d = (int.from_bytes(content, "big") for _, content in items[1:4])
    return PrivateKey(n, e, d)


# -- the AUTH signature -----------------------------------------------------------------------
def _encoded_message(token: bytes, size: int) -> bytes:
    """EMSA-PKCS1-v1_5 of the SHA-1 DigestInfo holding ``token`` as the digest."""
    payload = _SHA1_DIGEST_INFO + token
    return b"\x00\x01" + b"\xff" * (size - 3 - len(payload)) + b"\x00" + payload


def sign(key: PrivateKey, token: bytes) -> bytes:
    """What the adb server sends as AUTH SIGNATURE for ``token``."""
    size = (key.n.bit_length() + 7) // 8
    message = int.from_bytes(_encoded_message(token, size), "big")
    return pow(message, key.d, key.n).to_bytes(size, "big")


def verify(key: PublicKey, token: bytes, signature: bytes) -> bool:
    """adbd's check of an AUTH SIGNATURE against one authorized key."""
    if len(token) != TOKEN_SIZE or len(signature) != key.size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.n:
        return False
    recovered = pow(value, key.e, key.n).to_bytes(key.size, "big")
    return hmac.compare_digest(recovered, _encoded_message(token, key.size))


# -- where the adb server's keys are ----------------------------------------------------------
def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path(pwd.getpwuid(os.getuid()).pw_dir)


def key_files(env: Mapping[str, str]) -> list[Path]:
    """The private keys an adb server started with ``env`` signs with: the user key, then
    ``ADB_VENDOR_KEYS``. ``ANDROID_USER_HOME/adbkey`` is added when set (adb 36 itself reads
    only ``$HOME/.android``; other tools of the SDK use that folder)."""
    files = [_home(env) / ".android" / "adbkey"]
    if env.get("ANDROID_USER_HOME"):
        files.append(Path(env["ANDROID_USER_HOME"]) / "adbkey")
    for entry in filter(None, env.get("ADB_VENDOR_KEYS", "").split(":")):
        path = Path(entry)
        if path.is_dir():
            files += sorted(path.glob("*.adb_key"))
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def load_public_keys(private_files: list[Path]) -> list[PublicKey]:
    """The public halves of the keys that exist: ``FILE.pub`` when it is there and valid,
    else derived from the private key. Unreadable or malformed files are skipped."""
    keys: list[PublicKey] = []
    for path in private_files:
        key = None
        try:
            key = decode_public(Path(f"{path}.pub").read_text(encoding="ascii"))
        except (OSError, UnicodeError, KeyFormatError):
            try:
                key = decode_private_pem(path.read_text(encoding="ascii")).public(path.name)
            except (OSError, UnicodeError, KeyFormatError):
                continue
        if key.n.bit_length() == 32 * MODULUS_WORDS and key not in keys:
            keys.append(key)
    return keys
