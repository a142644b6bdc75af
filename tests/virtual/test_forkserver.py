"""The benchmark_model fork server: same results, exit codes and signals as a plain process."""

from __future__ import annotations

import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.virtual.benchmark_model import client as bm_client
from harness.virtual.benchmark_model import forkserver as bm_forkserver
from tests.virtual.conftest import REPO, run_benchmark

LAUNCHER = REPO / "android_assets" / "bin" / "virtual" / "benchmark_model"
FLAGS = ["--num_runs=2", "--warmup_runs=1", "--min_secs=0", "--warmup_min_secs=0"]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _shape(log: str) -> list[str]:
    """A log with its numbers masked. A statistics line's fields depend on the timings
    (``curr=5(all same)`` when every run took the same microseconds): kept as its kind."""
    return [
        "INFO: count=..." if ln.startswith("INFO: count=") else re.sub(r"\d[\d.e+-]*", "#", ln)
        for ln in log.splitlines()
    ]


def _forked(server: subprocess.Popen) -> list[int]:
    """The benchmarks the fork server is running (waits for the first)."""
    deadline = time.monotonic() + 30
    while not (pids := _children(server.pid)):
        assert time.monotonic() < deadline, "the server never forked"
        time.sleep(0.05)
    return pids


def _first_line(client: subprocess.Popen, within: float = 30.0) -> bytes:
    """The client's first line of output (the forked benchmark's), or b"" at the deadline."""
    ready, _, _ = select.select([client.stdout], [], [], within)
    return client.stdout.readline() if ready else b""


def _tmp(env: dict[str, str]) -> Path:
    """The phone's /data/local/tmp: the fork server serves only paths inside the phone."""
    path = Path(env["HARNESS_VIRTUAL_ROOT"]) / "data" / "local" / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _on_phone(env: dict[str, str], models: dict[str, Path]) -> dict[str, Path]:
    """The models, pushed to the phone's /data/local/tmp."""
    tmp = _tmp(env)
    placed = {}
    for head, path in models.items():
        placed[head] = tmp / path.name
        placed[head].write_bytes(path.read_bytes())
    return placed


@pytest.fixture
def server(phone):
    """A fork server for a phone root; yields (env for the launcher, server process)."""
    procs = []

    def start(**config):
        env = phone(**config)
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.virtual.benchmark_model.forkserver"]
            + ["--root", env["HARNESS_VIRTUAL_ROOT"]],
            stdin=subprocess.PIPE,
            env=env,
        )
        procs.append(proc)
        address = bm_client.address(env["HARNESS_VIRTUAL_ROOT"])
        deadline = time.monotonic() + 60
        while address not in Path("/proc/net/unix").read_text().replace("@", "\0"):
            assert time.monotonic() < deadline, "fork server never listened"
            assert proc.poll() is None, "fork server died"
            time.sleep(0.05)
        return {**env, "HARNESS_VIRTUAL_CLIENT": str(Path(bm_client.__file__))}, proc

    yield start
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=10)


def _launch(flags: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    kw.setdefault("cwd", _tmp(env))  # the phone shell's working directory is on the phone
    return subprocess.Popen(
        ["sh", str(LAUNCHER), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_forked_run_matches_a_plain_process(server, models):
    env, _ = server()
    models = _on_phone(env, models)
    value = _tmp(env) / "in.raw"
    np.linspace(-1, 1, 8 * 8 * 3, dtype=np.float32).tofile(value)
    from ai_edge_litert.interpreter import Interpreter

    name = Interpreter(model_path=str(models["softmax"])).get_input_details()[0]["name"]
    results = {}
    for how in ("forked", "plain"):
        out = _tmp(env) / "out.raw"  # one name: the logs echo it
        flags = [
            f"--graph={models['softmax']}",
            *FLAGS,
            "--use_gpu=true",
            f"--input_layer={name}",
            "--input_layer_shape=1,8,8,3",
            f"--input_layer_value_files={name.replace(':', '::')}:{value}",
            f"--output_filepath={out}",
        ]
        if how == "forked":
            client = _launch(flags, env)
            stdout, stderr = client.communicate(timeout=120)
            code = client.returncode
        else:
            run = run_benchmark(flags, env)
            stdout, stderr, code = run.stdout, run.stderr, run.returncode
        assert code == 0, stderr
        results[how] = (code, stdout, stderr, out.read_bytes())
        out.unlink()
    (fc, fout, ferr, fbytes), (pc, pout, perr, pbytes) = results["forked"], results["plain"]
    assert fc == pc == 0
    assert fbytes == pbytes and len(fbytes) == 8 * 8 * 2 * 4  # GPU FP16 emulation included
    assert _shape(fout) == _shape(pout)  # the same lines in the same order (numbers differ)
    assert "Inference timings in us" in fout and "TfLiteGpuDelegateV2" in ferr + perr


def test_failure_exit_code_and_stderr(server):
    env, proc = server()
    run = _launch([f"--graph={_tmp(env) / 'missing.tflite'}"], env)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "ERROR: Benchmarking failed." in stderr and "Benchmarking failed" not in stdout
    assert proc.poll() is None  # the server serves on


def test_crash_dies_by_sigsegv_through_a_shell(server, models):
    env, _ = server(chaos=[{"match": "tiny", "action": "crash"}])
    models = _on_phone(env, models)
    run = subprocess.run(
        ["sh", "-c", f'sh "{LAUNCHER}" --graph="{models["sigmoid"]}"; echo "status=$?"'],
        env=env,
        cwd=_tmp(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "status=139" in run.stdout  # what the device shell reports for a native SIGSEGV


def test_killed_client_takes_the_benchmark_with_it(server, models):
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    models = _on_phone(env, models)
    client = _launch([f"--graph={models['sigmoid']}", *FLAGS], env)
    hung = _forked(proc)
    client.kill()  # a shell timeout: the stream is closed and the process group killed
    client.communicate(timeout=10)
    assert _gone(hung[0])


def test_signals_are_forwarded(server, models):
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    models = _on_phone(env, models)
    client = _launch([f"--graph={models['sigmoid']}", *FLAGS], env)
    hung = _forked(proc)
    client.send_signal(signal.SIGTERM)
    client.communicate(timeout=10)
    assert client.returncode == -signal.SIGTERM
    assert _gone(hung[0])


def test_server_exit_kills_running_benchmarks(server, models):
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    models = _on_phone(env, models)
    client = _launch([f"--graph={models['sigmoid']}", *FLAGS], env)
    hung = _forked(proc)
    proc.stdin.close()  # the phone process ended
    proc.wait(timeout=10)
    assert _gone(hung[0])
    client.communicate(timeout=10)
    assert client.returncode != 0


def test_cwd_and_umask_are_the_clients(server, models):
    env, _ = server()
    work = _tmp(env) / "work"
    work.mkdir()
    (work / "m.tflite").write_bytes(models["sigmoid"].read_bytes())
    flags = " ".join(FLAGS)
    run = subprocess.run(
        [
            "sh",
            "-c",
            f'umask 077; sh "{LAUNCHER}" --graph=m.tflite --output_filepath=o.raw {flags}',
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE((work / "o.raw").stat().st_mode) == 0o600


def test_affinity_is_the_clients(server, models):
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    models = _on_phone(env, models)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    client = subprocess.Popen(
        ["taskset", "-c", str(cpu), "sh", str(LAUNCHER), f"--graph={models['sigmoid']}"],
        env=env,
        cwd=_tmp(env),
        stdout=subprocess.PIPE,
    )
    hung = _forked(proc)
    try:
        # The fork is visible before the child has taken on the client's context; its first
        # log line comes after (the parameters, then the hang): wait for it, not for time.
        assert _first_line(client), "the benchmark printed nothing"
        assert os.sched_getaffinity(hung[0]) == {cpu}  # taskset on the device means this
    finally:
        client.kill()
        client.wait(timeout=10)


def test_without_a_server_the_launcher_runs_the_module(phone, models):
    env = {**phone(), "HARNESS_VIRTUAL_CLIENT": str(Path(bm_client.__file__))}
    run = _launch([f"--graph={models['sigmoid']}", *FLAGS], env)
    stdout, _ = run.communicate(timeout=120)
    assert run.returncode == 0 and "Inference timings in us" in stdout


def test_benchmark_killed_by_sigkill_reports_137(server, models):
    """The OOM killer takes the forked benchmark: the shell sees 137, as for a native tool."""
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    models = _on_phone(env, models)
    shell = subprocess.Popen(
        ["sh", "-c", f'sh "{LAUNCHER}" --graph="{models["sigmoid"]}"; echo "status=$?"'],
        env=env,
        cwd=_tmp(env),
        stdout=subprocess.PIPE,
        text=True,
    )
    hung = _forked(proc)
    os.kill(hung[0], signal.SIGKILL)
    stdout, _ = shell.communicate(timeout=10)
    assert "status=137" in stdout


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def test_a_path_outside_the_phone_is_not_served(server, models):
    """A request naming a file outside the phone's sandbox is answered 'plain': the client
    runs the benchmark in its own process (its own rights), the server forks nothing."""
    env, proc = server(chaos=[{"match": "tiny", "action": "hang"}])
    assert not str(models["sigmoid"]).startswith(env["HARNESS_VIRTUAL_ROOT"])
    client = _launch([f"--graph={models['sigmoid']}", *FLAGS], env)
    try:
        deadline = time.monotonic() + 30
        module = b"harness.virtual.benchmark_model"
        while module not in _cmdline(client.pid):  # the client replaced itself: plain run
            assert client.poll() is None and time.monotonic() < deadline, "never ran plain"
            time.sleep(0.05)
        assert _children(proc.pid) == []
    finally:
        client.kill()
        client.communicate(timeout=10)


def test_check_request(tmp_path):
    root = tmp_path / "root"
    tmp = root / "data" / "local" / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "out").symlink_to(tmp_path)

    def req(*argv: str, cwd: Path = tmp, **extra) -> dict:
        return {"argv": list(argv), "cwd": str(cwd), "env": {}, "umask": 0o22, **extra}

    check = bm_forkserver.check_request
    assert check(req("--graph=m.tflite", "--output_filepath=/dev/null/../x"), str(root)) is not None
    assert check(req("--graph=m.tflite", "--output_filepath=o.raw"), str(root)) is None
    assert check(req(f"--graph={tmp}/m.tflite"), str(root)) is None
    assert "outside" in check(req("--graph=m.tflite", cwd=tmp_path), str(root))
    assert "outside" in check(req("--graph=../../../../m.tflite"), str(root))
    assert "outside" in check(req("--graph=m.tflite", "--output_filepath=out/x"), str(root))
    assert "outside" in check(req("--input_layer_value_files=a::b:/etc/passwd"), str(root))
    assert "outside" in check(req("--delegate_serialize_dir=/tmp"), str(root))
    assert check(req("--graph=m.tflite", umask=0o7777), str(root)) == "bad umask"
    assert check(req("--graph=m.tflite", cpus=["0"]), str(root)) == "bad cpus"
    assert check({"argv": "--graph=x", "cwd": str(tmp)}, str(root)) is not None
    assert check(req("--graph=m.tflite", env={"A": 1}), str(root)) is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="a listener of another uid needs root (CI is)")
def test_a_server_of_another_user_gets_nothing(phone):
    """Another account that took the fork server's socket name first (a squatter) gets no
    request and no descriptors: the client checks the listener's uid and runs plain."""
    env = {**phone(), "HARNESS_VIRTUAL_CLIENT": str(Path(bm_client.__file__))}
    read_end, write_end = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the squatter, as uid 65534
        got = b"error"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            import socket as sk

            listener = sk.socket(sk.AF_UNIX, sk.SOCK_SEQPACKET)
            listener.bind(bm_client.address(env["HARNESS_VIRTUAL_ROOT"]))
            listener.listen(1)
            os.write(ready_w, b"1")
            listener.settimeout(60)
            conn, _ = listener.accept()
            conn.settimeout(60)
            msg, fds, _, _ = sk.recv_fds(conn, 1 << 16, 3)
            got = b"received %d bytes, %d fds" % (len(msg), len(fds))
        except BaseException as exc:  # noqa: BLE001
            got = repr(exc).encode()
        finally:
            os.write(write_end, got)
            os._exit(0)
    os.close(write_end)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1"  # listening
    run = _launch([f"--graph={_tmp(env) / 'missing.tflite'}"], env)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1 and "Benchmarking failed" in stderr  # it ran (plain)
    report = os.read(read_end, 200)
    os.waitpid(pid, 0)
    assert report == b"received 0 bytes, 0 fds", report
