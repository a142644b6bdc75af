"""The package's layers: what may import what (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_device_layer_never_imports_the_virtual_phone():
    """The virtual phone is a lab instrument built on the device layer, not part of it."""
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(
            n for n in _imports(p) if n.startswith("harness.virtual")
        )
        for p in (PACKAGE / "devices").rglob("*.py")
    }
    assert (PACKAGE / "devices" / "wire.py").is_file()  # the shared codec stays here
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_virtual_phone_lives_in_its_own_package():
    assert not (PACKAGE / "devices" / "virtual").exists()
    assert (PACKAGE / "virtual" / "benchmark_model" / "tool.py").is_file()
    assert "harness.devices.wire" in _imports(PACKAGE / "virtual" / "transport.py")
