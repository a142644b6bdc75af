"""One pre-imported ``benchmark_model`` per virtual phone, forked for every invocation.

Importing numpy, LiteRT and the flatbuffer schema costs a fresh process a few hundred
milliseconds of CPU, paid again by every benchmark_model invocation (the accuracy pass runs one
per eval image), and two virtual phones on a 2-core host pay it against each other and the
harness. The virtual phone process starts this server once
(``python -m harness.virtual.benchmark_model.forkserver --root ROOT``): it imports everything, then
waits on an abstract unix socket (:func:`harness.virtual.benchmark_model.client.address`). Each
request from :mod:`harness.virtual.benchmark_model.client` carries argv, cwd, environment, umask,
CPU affinity and the client's stdin/stdout/stderr; the server forks, the child takes them over
and runs :func:`harness.virtual.benchmark_model.tool.benchmark`, and the server reports the
child's end (``exit N`` or ``signal N``) to the client.

What the benchmark measures is unchanged: the same code times the same ``invoke()`` calls in a
process of its own; only the import is done once, before the fork. The server stays
single-threaded (one selector loop) so that forking is safe. It ends when the phone process
closes its stdin (the phone stopped or died), killing any benchmark still running; a forked
benchmark also dies with the server (``PR_SET_PDEATHSIG``) and when its client goes away.

An abstract socket has no file permissions: any local account can connect. The server therefore
serves only its own user (the peer's ``SO_PEERCRED`` uid, checked before anything is read; any
other peer is disconnected) and only requests that stay inside the phone's sandbox (working
directory and every file flag: :func:`check_request`). A request it will not serve is answered
``plain``: the client then runs the benchmark itself, with its own rights.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback
from dataclasses import dataclass

from harness.virtual.benchmark_model import client as bm_client

_MAX_REQUEST = 1 << 20
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# benchmark_model flags that name a file or folder (read or written).
PATH_FLAGS = (
    "graph",
    "output_filepath",
    "op_profiling_output_file",
    "profiling_output_csv_file",
    "delegate_serialize_dir",
    "external_delegate_path",
)
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


@dataclass
class _Job:
    pid: int
    pidfd: int
    conn: socket.socket | None


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (from the kernel)."""
    _pid, uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return uid


def _inside(root: str, cwd: str, path: str) -> bool:
    resolved = os.path.realpath(os.path.join(cwd, path))
    return resolved == root or resolved.startswith(root.rstrip("/") + "/")


def check_request(req: object, root: str) -> str | None:
    """Why ``req`` may not be served for the phone rooted at ``root`` (None: it may)."""
    from harness.virtual.benchmark_model import flags as bm_flags
    from harness.virtual.benchmark_model.tool import Failed, _split_value_file

    if not isinstance(req, dict):
        return "not a request"
    argv, cwd, env = req.get("argv"), req.get("cwd"), req.get("env", {})
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return "argv is not a list of strings"
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        return "env is not a string mapping"
    umask, cpus = req.get("umask", 0o022), req.get("cpus")
    if not isinstance(umask, int) or not 0 <= umask <= 0o777:
        return "bad umask"
    if cpus is not None and not (
        isinstance(cpus, list) and all(isinstance(c, int) and c >= 0 for c in cpus)
    ):
        return "bad cpus"
    root = os.path.realpath(root)
    if not isinstance(cwd, str) or not cwd.startswith("/") or not _inside(root, "/", cwd):
        return f"working directory {cwd!r} is outside the phone"
    try:
        params = bm_flags.parse(argv)
    except bm_flags.FlagError:
        return None  # the benchmark rejects it before it opens anything
    paths = [str(params[name]) for name in PATH_FLAGS if params[name]]
    for item in filter(None, str(params["input_layer_value_files"]).split(",")):
        try:
            paths.append(_split_value_file(item)[1])
        except Failed:
            continue  # rejected by the benchmark before any file is read
    outside = [p for p in paths if not _inside(root, cwd, p)]
    return f"{outside[0]!r} is outside the phone" if outside else None


class ForkServer:
    def __init__(self, root: str) -> None:
        self.root = root
        self.uid = os.getuid()  # the only user served
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.jobs: dict[int, _Job] = {}
        self.running = True

    # -- parent -----------------------------------------------------------------------------
    def serve(self) -> None:
        self.listener.bind(bm_client.address(self.root))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "parent")
        try:
            while self.running:
                for key, _ in self.selector.select():
                    kind = key.data
                    if kind == "accept":
                        self._accept()
                    elif kind == "parent":
                        if not os.read(key.fd, 4096):  # the phone process is gone
                            self.running = False
                    elif isinstance(kind, tuple) and kind[0] == "exit":
                        self._reap(kind[1])
                    elif isinstance(kind, tuple) and kind[0] == "client":
                        self._from_client(kind[1])
        finally:
            for job in list(self.jobs.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(job.pid, 0)
            self.listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            uid = peer_uid(conn)
        except OSError:
            uid = -1
        if uid != self.uid:  # another account: nothing is read from it, nothing answered
            print(f"bm_forkserver: refused a client of uid {uid}", file=sys.stderr, flush=True)
            conn.close()
            return
        fds: list[int] = []
        try:
            conn.settimeout(5.0)  # the client sends its request at once
            data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
            req = json.loads(data)
            if len(fds) != 3:
                raise ValueError("malformed request")
            if reason := check_request(req, self.root):
                raise ValueError(reason)
            pid = os.fork()
        except (OSError, ValueError) as exc:
            print(f"bm_forkserver: cannot start a benchmark: {exc}", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                conn.send(b"plain")
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        if pid == 0:
            self._child(conn, req, fds)  # never returns
        for fd in fds:
            os.close(fd)
        conn.setblocking(False)
        pidfd = os.pidfd_open(pid)
        job = _Job(pid, pidfd, conn)
        self.jobs[pid] = job
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("client", pid))

    def _from_client(self, pid: int) -> None:
        job = self.jobs.get(pid)
        if job is None or job.conn is None:  # a stale event from the same select() batch
            return
        try:
            message = job.conn.recv(64)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if message.startswith(b"kill ") and message[5:].isdigit():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(pid, int(message[5:]))
            return
        # The client is gone (killed, or its shell stream closed): so is the benchmark.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._drop_conn(job)

    def _reap(self, pid: int) -> None:
        job = self.jobs.pop(pid)
        _, status = os.waitpid(pid, 0)
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        code = os.waitstatus_to_exitcode(status)
        if job.conn is not None:
            reply = b"signal %d" % -code if code < 0 else b"exit %d" % (code & 0xFF)
            with contextlib.suppress(OSError):
                job.conn.send(reply)
            self._drop_conn(job)

    def _drop_conn(self, job: _Job) -> None:
        if job.conn is not None:
            self.selector.unregister(job.conn)
            job.conn.close()
            job.conn = None

    # -- child ------------------------------------------------------------------------------
    def _child(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        code = 70
        try:
            self._become_client(conn, req, fds)
            from harness.virtual.benchmark_model.stats import Out
            from harness.virtual.benchmark_model.tool import benchmark

            code = benchmark([str(a) for a in req["argv"]], Out())
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
            code = 70
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _become_client(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        """Shed the server's state and take on the client's process context."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)  # die by them, as a native tool does
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            libc.prctl(_PR_SET_NAME, b"benchmark_model")  # what ps/top show, as on a phone
        self.selector.close()
        self.listener.close()
        conn.close()
        for job in self.jobs.values():
            os.close(job.pidfd)
            if job.conn is not None:
                job.conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(req["cwd"])
        os.umask(int(req.get("umask", 0o022)))
        if req.get("cpus"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, req["cpus"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in req.get("env", {}).items()})
        tempfile.tempdir = None  # TMPDIR is the client's now
        sys.argv = ["benchmark_model", *req["argv"]]


def preload() -> None:
    """Everything an invocation imports, imported once before any fork."""
    import harness.virtual.benchmark_model.tail_model  # noqa: F401
    import harness.virtual.benchmark_model.tool  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness-virtual-bm-forkserver")
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:  # Linux >= 5.3; without it the launcher runs benchmarks in plain processes
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as exc:
        print(f"bm_forkserver: not available here ({exc})", file=sys.stderr)
        return 0
    preload()
    server = ForkServer(args.root)
    try:
        server.serve()
    except OSError as exc:
        print(f"bm_forkserver: {exc}", file=sys.stderr)
        return 8
    except SystemExit:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
