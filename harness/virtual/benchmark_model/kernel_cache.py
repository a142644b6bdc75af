"""The virtual phone's GPU kernel cache (``--delegate_serialize_dir`` / ``_token``), emulated.

A real GPU delegate compiles a shader/program per delegated node at init (seconds on some
phones) unless it finds the kernels it serialized before under the serialize dir and token.
The virtual phone has no GPU compiler, so the compile is **emulated**: a cold init (no cache
file, or no serialize flags) waits ``gpu_compile_ms_per_node`` (``virtual.json``, from the
profile's ``[virtual]`` table; default :data:`DEFAULT_MS_PER_NODE`) for each delegated node, then
writes a cache file ``<dir>/<token>_<model sha256[:16]>.bin`` (the delegated node list) when the
flags are given. A warm init reads that file (real I/O) and skips the wait. The wait is part of
the tool's measured ``Initialized session`` time: cold and warm differ by the emulated compile,
which docs/virtual-phone.md states. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

DEFAULT_MS_PER_NODE = 2.0


def cache_file(directory: str, token: str, model: bytes) -> Path:
    return Path(directory) / f"{token}_{hashlib.sha256(model).hexdigest()[:16]}.bin"


def init_kernels(params, config: dict, model: bytes, delegated: tuple[int, ...], out) -> bool:  # noqa: ANN001
    """At GPU delegate init: warm (cache hit, returns True) or cold (emulated compile)."""
    directory, token = params["delegate_serialize_dir"], params["delegate_serialize_token"]
    path = cache_file(directory, token, model) if directory and token else None
    if path is not None:
        try:
            data = json.loads(path.read_text())
            if data.get("nodes") == list(delegated):
                out.runtime(f"Loaded serialized GPU kernels from {path} (virtual kernel cache).")
                return True
        except (OSError, ValueError, AttributeError):
            pass
    emulation = config.get("emulation") if isinstance(config.get("emulation"), dict) else {}
    per_node = float(emulation.get("gpu_compile_ms_per_node", DEFAULT_MS_PER_NODE))
    ms = per_node * len(delegated)
    out.runtime(f"Compiling {len(delegated)} GPU kernels (emulated: {ms:g} ms, virtual phone).")
    time.sleep(ms / 1000.0)
    if path is not None:
        try:
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"nodes": list(delegated), "virtual": True}))
            tmp.replace(path)
        except OSError:  # like the delegate: an unwritable dir only loses the cache
            out.runtime(f"Failed to serialize GPU kernels to {directory}.", "WARNING")
    return False
