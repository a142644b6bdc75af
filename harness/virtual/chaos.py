"""Faults a virtual phone injects on demand: the faults a device lab sees.

Two kinds, both switched on and off while the phone runs:

* **Link faults** (this module): the phone reads ``<sandbox>/.harness/chaos.json`` whenever it
  changes (checked every 0.1 s and before every connection and file transfer) and applies
  :class:`LinkFaults`: drop the TCP connection in the middle of a file transfer, throttle the
  link, fill the storage, go offline for a while.
* **benchmark_model faults** (``virtual.json`` ``"chaos"``, read by ``benchmark_model.py``):
  crash (SIGSEGV), hang, truncated output file, per model.

``harness virtual start --chaos SPEC`` and ``harness virtual chaos SELECTOR SPEC`` take a spec
``NAME[=ARG],...`` (:func:`parse_spec`); tests use ``manager.set_link_chaos``/``set_chaos``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import UsageError

log = logging.getLogger("harness.virtual")

CHAOS_FILE = Path(".harness") / "chaos.json"
BM_ACTIONS = ("crash", "hang", "truncate")
DROP_OPS = ("any", "send", "recv")


@dataclass(frozen=True)
class Drop:
    """Close the connection after ``after`` bytes of a sync transfer whose device path
    contains ``match`` (``op``: push = send, pull = recv), ``times`` times."""

    after: int = 0
    times: int = 1
    match: str = ""
    op: str = "any"


@dataclass(frozen=True)
class LinkFaults:
    drop: Drop | None = None
    slow: int | None = None  # link speed in bytes/s, both directions
    storage_free: int | None = None  # bytes pushes may still write; then ENOSPC
    offline_until: float | None = None  # epoch seconds: no connection until then

    @classmethod
    def from_json(cls, data: object) -> LinkFaults:
        """Validate a ``chaos.json`` document; UsageError for anything malformed."""
        if not isinstance(data, dict):
            raise UsageError("chaos: expected a JSON object")
        unknown = set(data) - {"drop", "slow", "storage_free", "offline_until"}
        if unknown:
            raise UsageError(f"chaos: unknown keys {sorted(unknown)}")
        drop = data.get("drop")
        if drop is not None:
            if not isinstance(drop, dict) or set(drop) - {"after", "times", "match", "op"}:
                raise UsageError("chaos: drop must be {after, times, match, op}")
            drop = Drop(
                after=_count(drop.get("after", 0), "drop.after"),
                times=_count(drop.get("times", 1), "drop.times"),
                match=str(drop.get("match", "")),
                op=str(drop.get("op", "any")),
            )
            if drop.op not in DROP_OPS:
                raise UsageError(f"chaos: drop.op must be one of {', '.join(DROP_OPS)}")
        slow = data.get("slow")
        free = data.get("storage_free")
        until = data.get("offline_until")
        if until is not None and not isinstance(until, int | float):
            raise UsageError("chaos: offline_until must be a number (epoch seconds)")
        if slow is not None and _count(slow, "slow") < 1:
            raise UsageError("chaos: slow must be at least 1 byte/s")
        return cls(
            drop=drop,
            slow=slow,
            storage_free=None if free is None else _count(free, "storage_free"),
            offline_until=None if until is None else float(until),
        )

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def active(self) -> bool:
        return bool(self.to_json())


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"chaos: {name} must be a whole number >= 0, got {value!r}")
    return value


# -- the spec users type -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosSpec:
    link: LinkFaults = field(default_factory=LinkFaults)
    bm_rules: tuple[dict, ...] = ()  # benchmark_model rules (virtual.json "chaos")


_SPEC_HELP = (
    "drop=BYTES, slow=BYTES_PER_S, storage-full[=FREE_BYTES], offline=SECONDS, "
    "crash[=MATCH], hang[=MATCH], truncate[=MATCH], none"
)


def _size(text: str, name: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    scale = units.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise UsageError(f"--chaos {name}= expects a number of bytes (e.g. 64k), got {text!r}")
    return int(digits) * scale


def parse_spec(text: str, now: float | None = None) -> ChaosSpec:
    """``drop=4096,slow=64k,crash=softmax`` -> ChaosSpec; ``none`` (or "") is no fault.

    Link faults: ``drop=BYTES`` (close the connection once, after BYTES of a file transfer),
    ``slow=BYTES_PER_S``, ``storage-full[=FREE_BYTES]`` (pushes fail with "No space left on
    device" beyond FREE_BYTES, default 0), ``offline=SECONDS`` (from now). benchmark_model
    faults, for models whose device path contains MATCH (default: every model):
    ``crash[=MATCH]`` (SIGSEGV), ``hang[=MATCH]``, ``truncate[=MATCH]`` (half the output file).
    """
    link: dict = {}
    rules: list[dict] = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, arg = item.partition("=")
        name = name.strip().lower()
        if name == "none" and not sep:
            continue
        if name == "drop" and sep:
            link["drop"] = Drop(after=_size(arg, name))
        elif name == "slow" and sep:
            link["slow"] = _size(arg, name)
            if link["slow"] < 1:
                raise UsageError("--chaos slow= must be at least 1 byte/s")
        elif name == "storage-full":
            link["storage_free"] = _size(arg, name) if sep else 0
        elif name == "offline" and sep:
            try:
                seconds = float(arg)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds < 1e7:
                raise UsageError(f"--chaos offline= expects seconds, got {arg!r}")
            link["offline_until"] = (time.time() if now is None else now) + seconds
        elif name in BM_ACTIONS:
            rules.append({"match": arg, "action": name, "when": "any"})
        else:
            raise UsageError(f"unknown --chaos item {item!r}; known: {_SPEC_HELP}")
    return ChaosSpec(LinkFaults(**link), tuple(rules))


# -- the phone's side ----------------------------------------------------------------------------


class LinkChaos:
    """The link faults in force in a phone process, with their counters (drops left, bytes
    stored); a changed ``chaos.json`` resets the counters."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.faults = LinkFaults()
        self._stamp: tuple | None = None
        self._drops_left = 0
        self._stored = 0

    def refresh(self) -> bool:
        """Reload the file if it changed; True when it did. A bad file means no faults."""
        try:
            st = self.path.stat()
            stamp: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        faults = LinkFaults()
        if stamp is not None:
            try:
                faults = LinkFaults.from_json(json.loads(self.path.read_text()))
            except (OSError, ValueError, UsageError) as exc:
                log.warning("chaos: ignoring %s: %s", self.path, exc)
        self.faults = faults
        self._drops_left = faults.drop.times if faults.drop else 0
        self._stored = 0
        log.warning("chaos: link faults now %s", json.dumps(faults.to_json()) or "{}")
        return True

    @property
    def offline(self) -> bool:
        until = self.faults.offline_until
        return until is not None and time.time() < until

    def delay(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the throttled link (0 without ``slow``)."""
        return nbytes / self.faults.slow if self.faults.slow else 0.0

    def should_drop(self, path: str, op: str, transferred: int) -> bool:
        """True (once per allowed drop) when a transfer has reached the drop point."""
        drop = self.faults.drop
        if drop is None or self._drops_left <= 0 or transferred < drop.after:
            return False
        if drop.op not in ("any", op) or drop.match not in path:
            return False
        self._drops_left -= 1
        log.warning("chaos: dropping the connection after %d bytes of %s %s", transferred, op, path)
        return True

    def storage_allows(self, total: int) -> bool:
        free = self.faults.storage_free
        return free is None or self._stored + total <= free

    def stored(self, nbytes: int) -> None:
        self._stored += nbytes
