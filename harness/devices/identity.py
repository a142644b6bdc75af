"""Which phone: a serial as one adb server lists it.

A serial alone is not an identity: two lab hosts both list ``emulator-5554``, and two adb
servers can both reach one ``127.0.0.1:PORT``. The device lock, device selection, the results
store and ``--resume`` all name a phone by :class:`DeviceId` (pure: no adb here).
"""

from __future__ import annotations

from typing import NamedTuple

UNKNOWN_SERVER = "unknown"  # cells stored before the server was recorded (store schema < 3)


class DeviceId(NamedTuple):
    server: str  # HOST:PORT of the adb server the phone was reached through
    serial: str

    def __str__(self) -> str:
        return f"{self.serial}@{self.server}"

    def matches(self, other: DeviceId) -> bool:
        """The same phone; one whose server was never recorded (a store migrated from
        schema 2, or an old run's plan) matches its serial on any server."""
        if self == other:
            return True
        unknown = UNKNOWN_SERVER in (self.server, other.server)
        return unknown and self.serial == other.serial

    def to_json(self) -> dict:
        return {"server": self.server, "serial": self.serial}

    @classmethod
    def from_json(cls, data: object) -> DeviceId:
        """``{"server", "serial"}``, or a bare serial (an old run's plan): server unknown."""
        if isinstance(data, dict):
            return cls(str(data.get("server") or UNKNOWN_SERVER), str(data.get("serial", "")))
        return cls(UNKNOWN_SERVER, str(data))
