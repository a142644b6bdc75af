from __future__ import annotations

import pytest

from harness.devices.adb import AdbServer, DeviceEntry, parse_server, select_devices
from harness.errors import DeviceNotFound, DeviceUnavailable, UsageError

S = AdbServer("127.0.0.1", 5037)
F = DeviceEntry("R58M1", "device", S, model="SM_G973F")
U = DeviceEntry("127.0.0.1:7402", "device", S, model="SM_G973U")
P = DeviceEntry("1A2B", "device", S, model="Pixel_7")
OFF = DeviceEntry("OLD1", "offline", S, model="SM_A105F")
UNAUTH = DeviceEntry("NEW1", "unauthorized", S)


def test_serial_prefix_glob():
    entries = [F, U, P]
    assert select_devices(entries, ["R58M1"]) == [F]
    assert select_devices(entries, ["SM-G973U"]) == [U]
    assert select_devices(entries, ["sm-g973f"]) == [F]
    assert select_devices(entries, ["Pixel 7"]) == [P]
    assert select_devices(entries, ["SM-G973*"]) == [F, U]
    assert select_devices(entries, ["127.0.0.1:*"]) == [U]
    assert select_devices(entries, ["SM-G973F", "SM-G973F"]) == [F]


def test_ambiguous_and_missing_list_what_is_connected():
    with pytest.raises(
        DeviceNotFound, match=r"'SM-G973' is ambiguous: it matches R58M1 \(SM-G973F\)"
    ):
        select_devices([F, U], ["SM-G973"])
    with pytest.raises(DeviceNotFound, match=r"no device matches 'SM-N9'.*connected: R58M1"):
        select_devices([F, U], ["SM-N9"])
    with pytest.raises(DeviceNotFound, match="no devices are connected"):
        select_devices([], [])
    with pytest.raises(DeviceNotFound, match="several devices"):
        select_devices([F, U], [])
    assert select_devices([F, OFF], []) == [F]


def test_offline_and_unauthorized():
    with pytest.raises(DeviceUnavailable, match="OLD1 is offline"):
        select_devices([OFF], ["SM-A105F"])
    with pytest.raises(DeviceUnavailable, match="accept the USB debugging prompt"):
        select_devices([UNAUTH], ["NEW1"])


def test_parse_server():
    assert parse_server("10.0.0.2:5038") == AdbServer("10.0.0.2", 5038)
    assert parse_server("5040") == AdbServer("127.0.0.1", 5040)
    assert parse_server("labhost") == AdbServer("labhost", 5037)
    for bad in ("host:port", ":", "h:70000"):
        with pytest.raises(UsageError):
            parse_server(bad)


def test_ambiguity_names_the_adb_server_only_where_two_list_one_serial():
    twin = DeviceEntry("R58M1", "device", AdbServer("127.0.0.1", 5038), model="SM_G973F")
    assert twin.serial == F.serial and twin.id != F.id
    with pytest.raises(DeviceNotFound) as caught:
        select_devices([F, twin, U], ["SM-G973"])
    message = str(caught.value)
    assert f"{F.id} (SM-G973F)" in message and f"{twin.id} (SM-G973F)" in message
    assert f"{U.serial} (SM-G973U)" in message and f"{U.id}" not in message
