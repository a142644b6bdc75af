"""Per-device lock across harness processes on this host (fcntl.flock on a lock file).

The kernel drops the lock when its holder dies, so a crashed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import time

from harness import config
from harness.devices.identity import DeviceId
from harness.errors import DeviceBusy


class DeviceLock:
    """The lock of one phone, by its identity (adb server, serial)."""

    def __init__(self, device: DeviceId, wait: float = 0.0) -> None:
        server, serial = device
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{server}-{serial}")
        lock_dir = config.home_dir() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.path = lock_dir / f"{safe}.lock"
        self.serial = serial
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> DeviceLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise DeviceBusy(
                        f"{self.serial} is busy: another harness run is measuring on it"
                        + (f" ({holder})" if holder else "")
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DeviceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
