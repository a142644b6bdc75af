"""``harness assets list|check|pin|fetch`` on a private assets folder (HARNESS_ASSETS), and
fetch against a stdlib HTTP server on 127.0.0.1 serving a stand-in binary."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from harness import assets, cli, config, ui
from harness.errors import AssetError, ExitCode

STANDIN = b"#!/bin/sh\necho stand-in benchmark_model\n"
OTHER = b"#!/bin/sh\necho something else\n"


@pytest.fixture
def assets_dir(tmp_path, monkeypatch) -> Path:
    """A copy of android_assets whose arm64 entries point at files the test controls."""
    root = tmp_path / "assets"
    shutil.copytree(
        config.REPO_ROOT / "android_assets", root, ignore=shutil.ignore_patterns("arm*", "x86*")
    )
    monkeypatch.setenv("HARNESS_ASSETS", str(root))
    monkeypatch.setenv("COLUMNS", "200")
    ui.console.cache_clear()
    ui.err_console.cache_clear()
    yield root
    ui.console.cache_clear()
    ui.err_console.cache_clear()


def _run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        cli.main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def http_server():
    """127.0.0.1 only, serving a dict of path -> bytes; records the paths asked for."""
    files: dict[str, bytes] = {}
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib name
            asked.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, files, asked
    server.shutdown()
    server.server_close()


def _state(abi: str, kind: str = "binary") -> dict:
    return next(
        s.to_json() for s in assets.check_all() if s.asset.abi == abi and s.asset.kind.value == kind
    )


def test_list_json_shows_every_abi_and_kind(assets_dir, capsys):
    code, out, _ = _run(capsys, "assets", "list", "--json")
    rows = json.loads(out)
    assert code == 0
    kinds = {(r["abi"], r["kind"]): r["state"] for r in rows}
    assert kinds[("harness-virtual", "binary")] == "ok"
    assert kinds[("harness-virtual", "apk")] == "ok"
    assert kinds[("arm64-v8a", "binary")] == "missing" and kinds[("arm64-v8a", "apk")] == "missing"
    assert all(
        r["url"].startswith("https://storage.googleapis.com/")
        for r in rows
        if r["abi"] == "arm64-v8a"
    )


def test_pin_a_placed_binary_then_check_then_tamper(assets_dir, capsys, tmp_path):
    placed = tmp_path / "android_aarch64_benchmark_model"
    placed.write_bytes(STANDIN)
    code, out, err = _run(capsys, "assets", "pin", "arm64-v8a", "--file", placed)
    assert code == 0, err
    sha = hashlib.sha256(STANDIN).hexdigest()
    assert sha in out and _state("arm64-v8a")["pinned_sha256"] == sha
    assert assets.binary_for_abi("arm64-v8a").actual_sha256 == sha
    code, out, _ = _run(capsys, "assets", "check", "--json")
    assert code == 0 and _state("arm64-v8a")["state"] == "ok"
    # The pin went to the binary entry only: the APK entry of the same ABI is untouched.
    assert _state("arm64-v8a", "apk")["pinned_sha256"] is None
    (assets_dir / "bin/arm64-v8a/benchmark_model").write_bytes(OTHER)
    code, _, err = _run(capsys, "assets", "check")
    assert code == ExitCode.ASSETS and err.count("\n") == 1 and "does not match the pinned" in err
    with pytest.raises(AssetError, match="refusing to benchmark"):
        assets.binary_for_abi("arm64-v8a")


def test_unpinned_binary_is_refused_in_one_line(assets_dir, capsys):
    path = assets_dir / "bin/arm64-v8a/benchmark_model"
    path.parent.mkdir(parents=True)
    path.write_bytes(STANDIN)
    with pytest.raises(AssetError, match=r"not pinned .*harness assets pin arm64-v8a$") as info:
        assets.binary_for_abi("arm64-v8a")
    assert info.value.exit_code == ExitCode.ASSETS
    code, _, err = _run(capsys, "assets", "check")
    assert code == ExitCode.ASSETS and "harness assets pin arm64-v8a" in err


def test_missing_binary_names_the_fetch_command(assets_dir):
    with pytest.raises(AssetError, match="run harness assets fetch arm64-v8a"):
        assets.binary_for_abi("arm64-v8a")
    with pytest.raises(AssetError, match="harness assets fetch arm64-v8a --apk"):
        assets.apk_for_abi("arm64-v8a")
    with pytest.raises(AssetError, match="no benchmark_model is listed for ABI 'mips'"):
        assets.binary_for_abi("mips")


def test_fetch_verifies_the_pin(assets_dir, capsys, http_server):
    base, files, asked = http_server
    files["/bm"] = STANDIN
    # Pin first (as a manifest committed with a known sha256 would be), then fetch.
    assets._write_pin(assets.find("arm64-v8a"), hashlib.sha256(STANDIN).hexdigest())
    code, out, err = _run(capsys, "assets", "fetch", "arm64-v8a", "--url", f"{base}/bm", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["pinned"] and result["bytes"] == len(STANDIN) and asked == ["/bm"]
    assert (assets_dir / "bin/arm64-v8a/benchmark_model").read_bytes() == STANDIN
    assert assets.binary_for_abi("arm64-v8a").ok
    # The server now serves something else: refused, and the pinned file stays as it was.
    files["/bm"] = OTHER
    code, _, err = _run(capsys, "assets", "fetch", "arm64-v8a", "--url", f"{base}/bm")
    assert code == ExitCode.ASSETS and "nothing was installed" in err and err.count("\n") == 1
    assert (assets_dir / "bin/arm64-v8a/benchmark_model").read_bytes() == STANDIN
    assert not list((assets_dir / "bin/arm64-v8a").glob(".*download"))


def test_fetch_unpinned_is_kept_but_unusable_unless_pinned(assets_dir, capsys, http_server):
    base, files, _ = http_server
    files["/apk"] = STANDIN
    code, out, _ = _run(capsys, "assets", "fetch", "arm64-v8a", "--apk", "--url", f"{base}/apk")
    assert code == 0 and "NOT pinned" in out
    with pytest.raises(AssetError, match="unpinned"):
        assets.apk_for_abi("arm64-v8a")
    code, out, _ = _run(
        capsys, "assets", "fetch", "arm64-v8a", "--apk", "--url", f"{base}/apk", "--pin", "--json"
    )
    assert code == 0 and json.loads(out)["pinned_now"] is True
    assert assets.apk_for_abi("arm64-v8a").actual_sha256 == hashlib.sha256(STANDIN).hexdigest()


def test_fetch_errors_are_one_line(assets_dir, capsys, http_server):
    base, _, _ = http_server
    code, _, err = _run(capsys, "assets", "fetch", "arm64-v8a", "--url", f"{base}/missing")
    assert code == ExitCode.ASSETS and "HTTP 404" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "assets", "fetch", "arm64-v8a", "--url", "ftp://example/bm")
    assert code == ExitCode.USAGE and "only http:// and https://" in err
    code, _, err = _run(capsys, "assets", "fetch", "harness-virtual")
    assert code == ExitCode.ASSETS and "no url" in err
    assert not (assets_dir / "bin/arm64-v8a/benchmark_model").exists()
