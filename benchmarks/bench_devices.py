"""Device layer throughput: harness push vs the adb binary's own `adb push`, shell round trip.

Both pushes send the same 50 MB file to the same virtual phone through the same adb server, in
alternating order, so the ratio is measured in one run: throughput ratio = adb time / harness
time (goal >= 0.9). A harness push of new content hashes while sending and writes the cache
marker; the second push of unchanged content must send 0 bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import lab, median, report  # noqa: E402

SIZE = 50 * 1024 * 1024
ROUNDS = 7


def main() -> dict:
    from harness.devices import adb
    from harness.devices.device import Device

    with lab() as (server, (record,)), tempfile.TemporaryDirectory() as tmp:
        (entry,) = adb.select_devices(adb.list_devices([server]), [record.serial])
        dev = Device(entry)
        src = Path(tmp) / "blob.bin"
        harness_s, hashed_s, adb_s = [], [], []
        for i in range(ROUNDS):
            src.write_bytes(os.urandom(SIZE))  # new content: a real (uncached) push each round
            order = ("harness", "adb", "hashed") if i % 2 == 0 else ("hashed", "adb", "harness")
            for who in order:
                # Untimed: drop earlier files and flush dirty pages, so disk writeback of one
                # contender's file never lands in another contender's time.
                dev.shell("rm -rf /data/local/tmp/bench; sync")
                os.sync()
                t = time.perf_counter()
                if who == "harness":  # new content: hashed while it is sent
                    dev._hashes._load().clear()
                    result = dev.push(src, f"/data/local/tmp/bench/h{i}.bin")
                    assert result.bytes_sent == SIZE
                    harness_s.append(time.perf_counter() - t)
                elif who == "hashed":  # content hashed before (e.g. a variant): not on the phone
                    result = dev.push(src, f"/data/local/tmp/bench/k{i}.bin")
                    assert result.bytes_sent == SIZE
                    hashed_s.append(time.perf_counter() - t)
                else:
                    subprocess.run(
                        [
                            adb.adb_binary(),
                            "-P",
                            str(server.port),
                            "-s",
                            record.serial,
                            "push",
                            str(src),
                            f"/data/local/tmp/bench/a{i}.bin",
                        ],
                        check=True,
                        capture_output=True,
                    )
                    adb_s.append(time.perf_counter() - t)
        dev.push(src, "/data/local/tmp/bench/again.bin")
        t = time.perf_counter()
        cached = dev.push(src, "/data/local/tmp/bench/again.bin")  # unchanged: must send 0 bytes
        cached_s = time.perf_counter() - t
        rtt = []
        for _ in range(50):
            t = time.perf_counter()
            dev.shell("true")
            rtt.append(time.perf_counter() - t)
        adb_shell = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run(
                [adb.adb_binary(), "-P", str(server.port), "-s", record.serial, "shell", "true"],
                check=True,
                capture_output=True,
            )
            adb_shell.append(time.perf_counter() - t)
    result = {
        "file_mb": SIZE / 2**20,
        "rounds": ROUNDS,
        "harness_push_mb_s": SIZE / 2**20 / median(harness_s),
        "adb_push_mb_s": SIZE / 2**20 / median(adb_s),
        "push_throughput_ratio": median(adb_s) / median(harness_s),
        "known_hash_push_mb_s": SIZE / 2**20 / median(hashed_s),
        "push_throughput_ratio_known_hash": median(adb_s) / median(hashed_s),
        "cached_push_bytes": cached.bytes_sent,
        "cached_push_vs_full_push_time": cached_s / median(harness_s),
        "harness_shell_rtt_ms": median(rtt) * 1000,
        "adb_binary_shell_ms": median(adb_shell) * 1000,
        "shell_rtt_ratio_harness_vs_adb_binary": median(rtt) / median(adb_shell),
        "device": "virtual SM-G973F (127.0.0.1)",
    }
    return report("devices", "Device layer (virtual SM-G973F, one run)", result)


if __name__ == "__main__":
    main()
