"""The virtual phone process: an ADB device endpoint on 127.0.0.1.

Run by ``harness virtual start`` as ``python -m harness.virtual.server --profile NAME
--port N --root DIR --adb-keys FILE``. It binds the loopback interface only, authenticates the
host like adbd with ``ro.adb.secure=1`` (AUTH TOKEN; only a signature by one of the public keys
in FILE, one ``adbkey.pub`` line each, brings a connection online: see transport.py), then
serves shell/exec/sync in its sandbox. Loopback is not the protection (every local account can
reach it): the key is. Without ``--adb-keys`` no host is ever authorized.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.devices import adbkey, wire
from harness.virtual.chaos import CHAOS_FILE, LinkChaos
from harness.virtual.profiles import (
    VIRTUAL_FEATURES,
    check_abi,
    load_profile,
    resolve_delegate,
    resolve_faults,
)
from harness.virtual.sandbox import Sandbox
from harness.virtual.services import Services
from harness.virtual.transport import Connection

BIND_HOST = "127.0.0.1"
_PR_SET_NO_NEW_PRIVS = 38


class VirtualPhone:
    def __init__(
        self,
        profile_name: str,
        root: Path,
        faults: tuple[str, ...] = (),
        keys: tuple[adbkey.PublicKey, ...] = (),
        abi: str = "",
        delegate: str | None = None,
    ) -> None:
        self.profile = load_profile(profile_name)
        self.faults = resolve_faults(self.profile, faults)  # defaults + requested
        self.delegate = resolve_delegate(self.profile, delegate, faults)  # GPU generation
        # The "unauthorized" fault: the phone's RSA prompt is never answered, no key is known.
        self.keys = () if "unauthorized" in self.faults else keys
        self.sandbox = Sandbox(root)
        self.sandbox.build(self.profile, self.faults, check_abi(abi), self.delegate)
        # Link faults are switched at runtime (chaos.py); a (re)started phone has none.
        (self.sandbox.root / CHAOS_FILE).unlink(missing_ok=True)
        self.chaos = LinkChaos(self.sandbox.root / CHAOS_FILE)
        self.services = Services(self.sandbox, self.chaos)
        self.banner = wire.make_banner(self.profile.banner_props(), VIRTUAL_FEATURES)
        self.connections: set[asyncio.Task] = set()
        self.live: set[Connection] = set()
        self.fork_server: subprocess.Popen | None = None

    def start_fork_server(self) -> None:
        """The pre-imported benchmark_model (bm_forkserver.py); HARNESS_VIRTUAL_FORK=0 turns
        it off. Not waited for: until it listens, the launcher runs the benchmark directly."""
        if os.environ.get("HARNESS_VIRTUAL_FORK") == "0":
            return
        env = {**self.sandbox.env(), "OPENBLAS_NUM_THREADS": "1"}  # fork a 1-thread parent
        self.fork_server = subprocess.Popen(
            [sys.executable, "-m", "harness.virtual.benchmark_model.forkserver"]
            + ["--root", str(self.sandbox.root)],
            stdin=subprocess.PIPE,  # closed when this process ends: the server follows
            stdout=subprocess.DEVNULL,
            cwd=self.sandbox.root,
            env=env,
        )
        self.sandbox.fork_server = True

    def stop_fork_server(self) -> None:
        proc, self.fork_server = self.fork_server, None
        if proc is None:
            return
        self.sandbox.fork_server = False
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.chaos.refresh()
        if self.chaos.offline:  # chaos: the phone is away; the host sees a closed connection
            logging.getLogger("harness.virtual").warning("chaos: offline, refusing a connection")
            writer.transport.abort()
            return
        conn = Connection(
            reader,
            writer,
            self.banner,
            self.services.resolve,
            keys=self.keys,
            chaos=self.chaos,
        )
        task = asyncio.current_task()
        self.connections.add(task)
        self.live.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(task)
            self.live.discard(conn)

    async def _watch_chaos(self) -> None:
        """Apply a changed chaos.json; while offline, cut every connection."""
        while True:
            self.chaos.refresh()
            if self.chaos.offline and self.live:
                logging.getLogger("harness.virtual").warning(
                    "chaos: offline, closing %d connection(s)", len(self.live)
                )
                for conn in list(self.live):
                    conn.drop(abort=True)
            await asyncio.sleep(0.1)

    async def serve(self, port: int, ready_file: Path | None = None) -> None:
        server = await asyncio.start_server(self._handle, BIND_HOST, port, reuse_address=True)
        actual = server.sockets[0].getsockname()[1]
        if ready_file:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "port": actual}))
            tmp.replace(ready_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.create_task(self._watch_chaos())
        async with server:
            await stop.wait()
        watcher.cancel()
        for task in list(self.connections):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.connections, return_exceptions=True)


def read_keys(path: Path | None) -> tuple[adbkey.PublicKey, ...]:
    """The authorized keys: one ``adbkey.pub`` line each (like adbd's ``adb_keys``)."""
    if path is None:
        return ()
    keys = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip():
            keys.append(adbkey.decode_public(line))
    return tuple(keys)


def no_new_privileges() -> None:
    """PR_SET_NO_NEW_PRIVS for this process and everything it starts (the shell, the fork
    server, benchmarks): a setuid program run from the phone's shell gains nothing."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness-virtual-phone")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--faults", default="")
    parser.add_argument("--abi", default="")
    parser.add_argument("--delegate", default=None)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--adb-keys", type=Path, help="authorized adb public keys, one a line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    no_new_privileges()
    faults = tuple(f for f in args.faults.split(",") if f)
    try:
        keys = read_keys(args.adb_keys)
    except (OSError, UnicodeError, adbkey.KeyFormatError) as exc:
        print(f"cannot read the adb keys {args.adb_keys}: {exc}", file=sys.stderr)
        return 8
    phone = VirtualPhone(args.profile, args.root, faults, keys, args.abi, args.delegate)
    logging.getLogger("harness.virtual").info(
        "authorized adb keys: %s", ", ".join(k.fingerprint for k in keys) or "none"
    )
    phone.start_fork_server()
    try:
        asyncio.run(phone.serve(args.port, args.ready_file))
    except OSError as exc:
        print(f"cannot listen on {BIND_HOST}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 8
    finally:
        phone.stop_fork_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
