"""The HTML report in a real browser: Debian's headless Chromium renders it without console
errors, every image decodes, the tables are there; a screenshot is kept with the test output.

Chromium is required in CI (``.ci/run`` installs Debian's ``chromium``); locally the tests
skip only when it is absent and CI is unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from harness.report.commands import write_report

from .conftest import WRONG

_CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const result = {
    images: imgs.length,
    broken: imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    data_uris: imgs.filter((i) => i.src.startsWith("data:image/png;base64,")).length,
    tables: document.querySelectorAll("table").length,
    result_rows: document.querySelectorAll("table.results tbody tr").length,
    virtual_badges: document.querySelectorAll(".badge.virtual").length,
    height: document.documentElement.scrollHeight,
  };
  const out = document.createElement("pre");
  out.id = "harness-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""
WIDTH = 1280  # the check and the screenshot lay the page out at the same width
MAX_SHOT_HEIGHT = 9000
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\]\s*(.*)")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run must apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


def _browse(chromium: str, profile: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.resolve().as_uri(),
    ]
    home = profile.with_name(profile.name + "-home")  # nothing of the user's is read or written
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache")}  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def console_messages(stderr: str) -> list[str]:
    """Everything the page wrote to the console (the report has no scripts: any message is an
    error, e.g. a Content-Security-Policy violation for an external resource)."""
    return [m.group(1) for m in map(_CONSOLE.search, stderr.splitlines()) if m]


def _with_checker(html: str) -> str:
    """The report plus a script that measures the rendered page (its CSP allows only that)."""
    csp = re.compile(r'(http-equiv="Content-Security-Policy" content=")([^"]*)"')
    assert csp.search(html), "the page has no Content-Security-Policy"
    html = csp.sub(lambda m: f'{m.group(1)}{m.group(2)}; script-src &#39;unsafe-inline&#39;"', html)
    return html.replace("</body>", _CHECK_SCRIPT + "</body>")


def _inspect(chromium: str, tmp_path: Path, html: str, name: str) -> tuple[dict, list[str]]:
    page = tmp_path / f"{name}.html"
    page.write_text(_with_checker(html), encoding="utf-8")
    profile = tmp_path / f"profile-{name}"
    result = _browse(chromium, profile, page, "--dump-dom", f"--window-size={WIDTH},800")
    found = re.search(r'<pre id="harness-check">(.*?)</pre>', result.stdout, re.S)
    assert found, "the check script did not run: " + result.stdout[-500:]
    return json.loads(found.group(1)), console_messages(result.stderr)


def test_report_renders_in_chromium(bench, store, tmp_path, record_property):
    chromium = _chromium()
    bench.run(tag="release-1.0")
    run = bench.run(wrong=WRONG, scale=1.2)
    written, _ = write_report(store, [run], "release-1.0", ["html"], tmp_path / "report")
    html = written["html"].read_text(encoding="utf-8")

    screenshot = tmp_path / "report-screenshot.png"
    with ThreadPoolExecutor(2) as pool:  # two browsers at once: the check and the screenshot
        checking = pool.submit(_inspect, chromium, tmp_path, html, "checked")
        shooting = pool.submit(
            _browse,
            chromium,
            tmp_path / "profile-shot",
            written["html"],
            f"--screenshot={screenshot}",
            f"--window-size={WIDTH},{MAX_SHOT_HEIGHT}",
        )
        measured, console = checking.result()
        shot = shooting.result()
    assert console == [], console
    assert console_messages(shot.stderr) == []
    assert measured["broken"] == [], f"images that did not decode: {measured['broken']}"
    assert measured["images"] == measured["data_uris"] == 2 + 2 + 3 * 4
    assert measured["result_rows"] == 18
    assert measured["tables"] >= 6  # devices, 2 x results, delegation, overlays, regressions
    assert measured["virtual_badges"] >= 5

    import cv2

    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[:2] == (MAX_SHOT_HEIGHT, WIDTH)
    image = image[: min(int(measured["height"]), MAX_SHOT_HEIGHT)]  # the page, not the blank
    cv2.imwrite(str(screenshot), image)
    assert float(np.std(image)) > 10, "the screenshot is blank"
    record_property("screenshot", str(screenshot))
    print(f"report screenshot: {screenshot}")


def test_browser_checks_catch_broken_pages(tmp_path):
    """The checks above can fail: an external image (blocked by the report's CSP, reported on
    the console) and a corrupt data: image (does not decode) are both caught."""
    chromium = _chromium()
    page = (
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"></head><body>"
        '<img alt="external" src="http://127.0.0.1:9/x.png">'
        '<img alt="corrupt" src="data:image/png;base64,AAAA"></body></html>'
    )
    measured, console = _inspect(chromium, tmp_path, page, "broken")
    assert sorted(measured["broken"]) == ["corrupt", "external"]
    assert any("Content Security Policy" in m for m in console), console
