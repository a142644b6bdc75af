"""Security: quoted device commands (an injection attempt through model names, paths and
tensor names), a loopback-only phone confined to its sandbox, escaped reports, parameterized
SQL."""

from __future__ import annotations

import ast
import socket
import sqlite3
from pathlib import Path

import pytest

from harness import config
from harness.devices import adb
from harness.devices.device import Device, quote
from harness.devices.identity import DeviceId
from harness.errors import HarnessError
from harness.store import Store
from tests.reliability.conftest import run_bench_cli, stored_cells

MARKER = "INJECTED"


def _device(server, serial: str) -> Device:
    (entry,) = adb.select_devices(adb.list_devices([server]), [serial])
    return Device(entry)


def _planted(*roots: Path) -> list[Path]:
    """Files an injected command would have created (``INJECTED*`` or ``P``)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.name.startswith(MARKER) or path.name == "P":
                found.append(path)
    return found


def test_injection_through_model_paths_and_tensor_names(
    bench_model, phone, adb_server, tmp_path, monkeypatch
):
    """A model whose path, file name and input tensor name are shell injections is benched
    normally: every device command quotes them, so nothing runs."""
    data = (bench_model / "variants" / "sigmoid-fp32.tflite").read_bytes()
    assert data.count(b"image") == 1  # the input tensor's name, renamed below (same length)
    folder = tmp_path / f"a b;touch {MARKER}1;$(touch {MARKER}2)"
    folder.mkdir()
    model = folder / f"m;touch {MARKER}3 `touch {MARKER}4` <img src=x onerror=alert(3)>'.tflite"
    model.write_bytes(data.replace(b"image", b"$(>P)"))
    store = tmp_path / f"s;touch {MARKER}5" / "r $(touch INJECTED6).db"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = run_bench_cli(model, phone.serial, store, "--delegates", "cpu,gpu")
    assert result.returncode == 0, result.stderr
    _, cells = stored_cells(store)
    assert len(cells) == 2 and all(c.measured for c in cells)
    assert all(c.variant_id == model.stem for c in cells)
    assert all(c.accuracy.reference.iou >= 0.99 for c in cells)
    with Store(store) as db:  # the hostile tensor name did reach the device's command lines
        assert db.variant(cells[0].variant_sha256)["spec"]["input"]["name"] == "$(>P)"
    sandbox = Path(phone.root)
    assert not _planted(sandbox, tmp_path, Path(config.home_dir()))
    # The check can see an injection: the same name unquoted does plant the file.
    device = _device(adb_server, phone.serial)
    assert device.shell("cd /data/local/tmp && echo --input_layer=$(>P)").ok
    assert _planted(sandbox)
    # And quoting it (what every harness command does) does not.
    (sandbox / "data" / "local" / "tmp" / "P").unlink()
    assert device.shell(["echo", "--input_layer=$(>P)"]).out == "--input_layer=$(>P)\n"
    assert device.shell(f"cd /data/local/tmp && echo {quote('$(>P);touch P')}").ok
    assert not _planted(sandbox)


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, port_hex = local.partition(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.append(address)
    return found


def test_phone_listens_on_loopback_only(phone):
    addresses = _listening(phone.port)
    assert addresses == ["0100007F"], addresses  # 127.0.0.1, and nothing else (no 0.0.0.0, ::)
    try:
        outside = socket.gethostbyname(socket.gethostname())
    except OSError:
        outside = None
    if outside and not outside.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((outside, phone.port), timeout=2).close()


def test_file_transfers_cannot_leave_the_sandbox(phone, adb_server, tmp_path):
    """Every sync verb with '..' and with a planted symlink stays inside the sandbox."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    device = _device(adb_server, phone.serial)
    up = "/data/local/tmp/" + "../" * 12
    with device._sync() as sync:
        assert sync.stat_size(up + str(secret).lstrip("/")) is None  # STAT
        assert sync.read_small(up + str(secret).lstrip("/")) is None  # RECV
        assert sync.read_small(up + "etc/passwd") is None
    # Device folders are the sandbox's (the shell itself is the host's /bin/sh, not a jail:
    # sandbox.py): a file planted in the sandbox's /sdcard is what the device's /sdcard shows.
    (Path(phone.root) / "sdcard" / "marker-in-sandbox").write_text("x")
    assert "marker-in-sandbox" in device.shell(["ls", "/sdcard"]).out.split()
    assert device.read_file("/sdcard/marker-in-sandbox") == b"x"
    assert device.shell(["ln", "-sfn", str(tmp_path), "/sdcard/hostdir"]).ok
    assert device.read_file("/sdcard/hostdir/secret.txt") is None
    assert device.read_file("/storage/emulated/0/hostdir/secret.txt") is None
    assert device.stat_size("/sdcard/hostdir/secret.txt") is None
    payload = tmp_path / "payload"
    payload.write_text("x")
    # '..' past the root stays at the sandbox root (as on a phone): the file lands inside.
    device.push(payload, up + str(tmp_path / "planted1").lstrip("/"), use_cache=False)
    assert (Path(phone.root) / str(tmp_path / "planted1").lstrip("/")).read_text() == "x"
    # Through the planted symlink: refused.
    with pytest.raises(HarnessError, match="outside the device"):
        device.push(payload, "/sdcard/hostdir/planted2", use_cache=False)
    assert not (tmp_path / "planted1").exists() and not (tmp_path / "planted2").exists()


# -- SQL -----------------------------------------------------------------------------------------


def _constant_text(node: ast.AST) -> bool:
    """A string literal, or literals joined with +."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and _constant_text(node.left)
        and _constant_text(node.right)
    )


def _module_constant(node: ast.AST) -> bool:
    """An expression over module-level UPPER_CASE constants only (e.g. _SCHEMA.split(";"))."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    return all(n.lstrip("_").isupper() or n in ("filter", "str") for n in names)


def _sql_arguments() -> list[tuple[str, bool]]:
    """(where, is_constant) for the SQL text of every execute/executemany/executescript call
    in harness/: literal text, or a local name only ever bound to literal text."""
    found = []
    for path in config.PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            bindings: dict[str, list[bool]] = {}
            for node in ast.walk(func):
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and node.value is not None:
                            ok = _constant_text(node.value)
                            bindings.setdefault(target.id, []).append(ok)
                elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                    bindings.setdefault(node.target.id, []).append(_module_constant(node.iter))
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "executescript")
                    and node.args
                ):
                    arg = node.args[0]
                    if isinstance(arg, ast.Name):
                        ok = all(bindings.get(arg.id, [False]))
                    else:
                        ok = _constant_text(arg)
                    found.append((f"{path.relative_to(config.REPO_ROOT)}:{node.lineno}", ok))
    return found


def test_store_sql_is_parameterized_only():
    """No SQL text is built from values (f-strings, %, format, +variables): values always
    travel as ? parameters."""
    found = _sql_arguments()
    assert len(found) >= 15  # the store's and the report's queries were all seen
    built = [where for where, ok in found if not ok]
    assert not built, f"SQL built from values (use ? parameters): {built}"


def test_hostile_names_are_data_in_the_store(tmp_path):
    path = tmp_path / "r.db"
    hostile = "x'); DROP TABLE cells; --"
    with Store(path) as store:
        run = store.create_run({"model": hostile})
        store.tag(run, hostile)
        assert store.resolve_run(hostile) == run
        with pytest.raises(Exception, match="no run or tag"):
            store.resolve_run("' OR '1'='1")
        store.add_device(run, DeviceId(hostile, hostile), hostile, True, {"model": hostile})
        assert store.devices(run)[0]["serial"] == store.devices(run)[0]["server"] == hostile
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "cells" in tables


# Names that may appear unquoted in a device command: a CPU mask computed from integers
# (mask; prefix = "taskset MASK "), a constant marker, and cmd (a command already built from
# quoted parts, wrapped for shell v1).
_SAFE_NAMES = {"mask", "prefix", "marker", "cmd"}


def test_device_commands_quote_every_interpolated_value():
    """Every f-string passed to ``Device.shell`` (or returned as a command) in harness/
    interpolates only ``quote(...)``/``sh_join(...)`` or values computed from integers."""
    unquoted = []
    for path in config.PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            strings: list[ast.JoinedStr] = []
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "shell":
                strings = [a for a in node.args[:1] if isinstance(a, ast.JoinedStr)]
            elif isinstance(node, ast.FunctionDef) and node.name == "_command":
                strings = [
                    r.value
                    for r in ast.walk(node)
                    if isinstance(r, ast.Return) and isinstance(r.value, ast.JoinedStr)
                ]
            for text in strings:
                for part in text.values:
                    if not isinstance(part, ast.FormattedValue):
                        continue
                    value = part.value
                    quoted = isinstance(value, ast.Call) and getattr(
                        value.func, "id", getattr(value.func, "attr", "")
                    ) in ("quote", "sh_join")
                    safe = isinstance(value, ast.Name) and value.id in _SAFE_NAMES
                    if not (quoted or safe):
                        unquoted.append(f"{path.name}:{part.lineno}: {ast.unparse(value)}")
    assert not unquoted, unquoted
