"""The virtual phone's ``benchmark_model`` command: hands each invocation to the fork server.

A fresh Python process spends most of a short benchmark_model invocation importing numpy and
LiteRT. The virtual phone therefore keeps one pre-imported process per phone
(:mod:`harness.virtual.benchmark_model.forkserver`) and this client, started by the launcher
``android_assets/bin/virtual/benchmark_model`` as ``python -S -E -B bm_client.py ARGS``, asks it
for a forked copy that runs ``benchmark(ARGS)`` on this process's own stdin/stdout/stderr (the
descriptors travel over the socket), working directory, environment, umask and CPU affinity.
The client then exits the way the benchmark did: the same exit code, or death by the same
signal, so the shell sees exactly what it would see from a plain process. Signals sent to the
client (Ctrl-C, a timeout's SIGTERM) are forwarded; a client killed outright (SIGKILL) closes
the socket and the server kills the benchmark.

Standard library only, and no harness import: it must start in ~20 ms. When the fork server is
not there (not started yet, disabled, or refusing), or the socket's name is held by another
user's process (checked with ``SO_PEERCRED`` before anything is sent), the client replaces itself
with the plain ``python -m harness.virtual.benchmark_model``, so the command always
works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import socket
import struct
import sys

BENCHMARK_MODULE = "harness.virtual.benchmark_model"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


def address(root: str) -> str:
    """The fork server's abstract unix socket for the virtual phone rooted at ``root``
    (abstract: no path-length limit and nothing left on disk)."""
    return "\0harness-vbm-" + hashlib.sha256(root.encode()).hexdigest()[:24]


def request(argv: list[str]) -> bytes:
    umask = os.umask(0)
    os.umask(umask)
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    return json.dumps(
        {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": umask,
            "cpus": cpus,
        }
    ).encode()


def _peer_uid(sock: socket.socket) -> int:
    """The uid of the process listening at the other end (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _plain(argv: list[str]) -> None:
    """Run the benchmark in this process's place, without the fork server."""
    python = sys.executable
    os.execv(python, [python, "-m", BENCHMARK_MODULE, *argv])


def _die_like(signum: int) -> None:
    """End this process by ``signum`` (the benchmark died by it), without a core file."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(ValueError, OSError):  # SIGKILL and SIGSTOP have no handler
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached for a fatal signal


def main(argv: list[str]) -> None:
    root = os.environ.get("HARNESS_VIRTUAL_ROOT", "")
    if not root or os.environ.get("HARNESS_VIRTUAL_FORK") == "0":
        _plain(argv)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(address(root))
        if _peer_uid(sock) != os.getuid():  # another account holds the name: not our server
            raise PermissionError("the fork server's address belongs to another user")
        socket.send_fds(sock, [request(argv)], [0, 1, 2])
    except OSError:  # no server (yet), or a closed standard descriptor: run it here
        sock.close()
        _plain(argv)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            sock.send(b"kill %d" % signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            reply = sock.recv(64)
        except InterruptedError:
            continue
        except OSError:
            reply = b""
        break
    word, _, number = reply.decode("ascii", "replace").partition(" ")
    if word == "exit" and number.isdigit():
        os._exit(int(number))
    if word == "signal" and number.isdigit():
        _die_like(int(number))
    if word == "plain":  # the server could not start it (fork failed): run it here
        sock.close()
        _plain(argv)
    os.write(2, b"benchmark_model: the virtual phone's fork server went away\n")
    os._exit(137)


if __name__ == "__main__":
    main(sys.argv[1:])
