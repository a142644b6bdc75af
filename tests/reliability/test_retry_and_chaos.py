"""Units: the retry policy (retry.py) and the chaos spec and state (chaos.py)."""

from __future__ import annotations

import json
import os

import pytest

from harness.devices.retry import Backoff, backoff_within, retry
from harness.errors import (
    AdbUnavailable,
    DeviceNotFound,
    DeviceTimeout,
    DeviceUnavailable,
    ExitCode,
    HarnessError,
    UsageError,
)
from harness.virtual.chaos import ChaosSpec, Drop, LinkChaos, LinkFaults, parse_spec


def test_backoff_is_exponential_and_capped():
    assert Backoff().delays() == [0.5, 1.0, 2.0]
    assert Backoff(attempts=6, first=1, factor=3, cap=5).delays() == [1, 3, 5, 5, 5]
    assert Backoff(attempts=1).delays() == [] and Backoff().total == 3.5
    delays = backoff_within(10)
    assert sum(delays) == pytest.approx(10) and delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(backoff_within(100, cap=8)) == 8 and backoff_within(0) == []


@pytest.mark.parametrize(
    "error", [DeviceUnavailable, DeviceNotFound, AdbUnavailable, DeviceTimeout]
)
def test_transient_failures_are_retried_then_reraised(error):
    calls, sleeps, recovered = [], [], []

    def flaky():
        calls.append(1)
        raise error("link dropped")

    def recover(delay):
        recovered.append(delay)
        raise DeviceUnavailable("still away")  # a failed recovery does not stop the retries

    with pytest.raises(error) as info:
        retry(flaky, what="pull", recover=recover, sleep=sleeps.append)
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 2.0] and recovered == sleeps
    assert "gave up after 4 tries" in str(info.value)
    assert info.value.exit_code == error("x").exit_code


def test_success_after_a_drop_and_non_transient_failures_fail_at_once():
    attempts = iter([DeviceUnavailable("dropped"), DeviceUnavailable("dropped"), "done"])
    notes = []

    def once():
        step = next(attempts)
        if isinstance(step, Exception):
            raise step
        return step

    assert retry(once, what="push", sleep=lambda s: None, on_retry=lambda w, e: notes.append(w))
    assert notes == ["push", "push"]
    calls = []

    def full():
        calls.append(1)
        raise HarnessError("push failed: No space left on device")

    with pytest.raises(HarnessError, match="No space left"):
        retry(full, what="push", sleep=lambda s: None)
    assert len(calls) == 1  # a full disk is not fixed by trying again


def test_parse_spec():
    spec = parse_spec(
        "drop=4096, slow=64k,storage-full,offline=5,crash=softmax,hang,truncate=x", 1000
    )
    assert spec.link == LinkFaults(
        drop=Drop(after=4096), slow=65536, storage_free=0, offline_until=1005.0
    )
    assert [r["action"] for r in spec.bm_rules] == ["crash", "hang", "truncate"]
    assert spec.bm_rules[0]["match"] == "softmax" and spec.bm_rules[1]["match"] == ""
    assert parse_spec("none") == ChaosSpec() and parse_spec("") == ChaosSpec()
    assert parse_spec("storage-full=1m").link.storage_free == 1024 * 1024
    assert parse_spec("crash=a=b").bm_rules[0]["match"] == "a=b"  # MATCH is free text
    for bad in ("melt", "drop", "drop=-1", "slow=fast", "slow=0", "offline=0", "offline=soon"):
        with pytest.raises(UsageError) as info:
            parse_spec(bad)
        assert info.value.exit_code == ExitCode.USAGE and "\n" not in str(info.value)


def test_link_faults_validation():
    assert LinkFaults.from_json({}) == LinkFaults()
    faults = LinkFaults.from_json({"drop": {"after": 10, "op": "recv"}, "slow": 1})
    assert faults.drop == Drop(after=10, op="recv") and faults.slow == 1
    assert LinkFaults.from_json(faults.to_json()) == faults
    for bad in (
        [],
        {"explode": 1},
        {"drop": {"after": -1}},
        {"drop": {"op": "both"}},
        {"drop": 5},
        {"slow": "fast"},
        {"slow": 0},
        {"storage_free": True},
        {"offline_until": "later"},
    ):
        with pytest.raises(UsageError):
            LinkFaults.from_json(bad)


def test_link_chaos_state(tmp_path):
    path = tmp_path / "chaos.json"
    chaos = LinkChaos(path)
    assert not chaos.refresh() and chaos.faults == LinkFaults()  # no file: no fault
    path.write_text(json.dumps({"drop": {"after": 100, "times": 2, "match": ".tflite"}}))
    assert chaos.refresh() and not chaos.refresh()  # reloaded once per change
    assert not chaos.should_drop("/x/m.tflite", "send", 99)
    assert not chaos.should_drop("/x/all.bin", "recv", 500)  # does not match
    assert chaos.should_drop("/x/m.tflite", "send", 100)
    assert chaos.should_drop("/x/m.tflite", "recv", 200)
    assert not chaos.should_drop("/x/m.tflite", "send", 300)  # both drops used
    tmp = tmp_path / "new.json"
    tmp.write_text(json.dumps({"storage_free": 10, "slow": 1000, "offline_until": 1e12}))
    os.replace(tmp, path)
    assert chaos.refresh() and chaos.offline and chaos.delay(500) == 0.5
    assert chaos.storage_allows(10) and not chaos.storage_allows(11)
    chaos.stored(8)
    assert not chaos.storage_allows(3)
    path.write_text("{broken")
    assert chaos.refresh() and chaos.faults == LinkFaults()  # a bad file: no faults, no crash
