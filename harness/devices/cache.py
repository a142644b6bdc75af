"""Local content-hash cache: (path, size, mtime, inode) -> sha256, so unchanged files are
hashed once. A JSON file under HARNESS_HOME, replaced atomically; a lost update only costs a
re-hash."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from harness import config

_MAX_ENTRIES = 4096


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LocalHashCache:
    def __init__(self, file: Path | None = None) -> None:
        self.file = file or config.home_dir() / "hashes.json"
        self._data: dict[str, list] | None = None

    def _load(self) -> dict[str, list]:
        if self._data is None:
            try:
                self._data = json.loads(self.file.read_text())
            except (OSError, ValueError):
                self._data = {}
        return self._data

    @staticmethod
    def _key(path: Path) -> str:
        return str(path.resolve())

    @staticmethod
    def _stamp(st: os.stat_result) -> list:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def get(self, path: Path, st: os.stat_result) -> str | None:
        entry = self._load().get(self._key(path))
        return entry[1] if entry and entry[0] == self._stamp(st) else None

    def put(self, path: Path, st: os.stat_result, sha: str) -> None:
        data = self._load()
        data[self._key(path)] = [self._stamp(st), sha]
        while len(data) > _MAX_ENTRIES:
            data.pop(next(iter(data)))
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.file)

    def compute(self, path: Path, st: os.stat_result) -> str:
        sha = sha256_file(path)
        self.put(path, st, sha)
        return sha
