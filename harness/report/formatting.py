"""Number and time formatting shared by every renderer (HTML, Markdown, terminal tables).

``None`` (not measured) is always shown as an em dash, never as 0.
"""

from __future__ import annotations

import math
import time

MISSING = "—"


def _num(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ms(value: object) -> str:
    """Milliseconds with precision that fits the magnitude: 0.412, 2.91, 38.4, 1,204."""
    v = _num(value)
    if v is None:
        return MISSING
    if abs(v) < 1:
        return f"{v:.3f}"
    if abs(v) < 10:
        return f"{v:.2f}"
    if abs(v) < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def iou(value: object) -> str:
    """IoU with three decimals; a value below 1 never prints as 1.000."""
    v = _num(value)
    if v is None:
        return MISSING
    text = f"{v:.3f}"
    if text == "1.000" and v < 1:
        text = f"{v:.4f}" if f"{v:.4f}" != "1.0000" else ">0.9999"
    return text


def pct(value: object, signed: bool = True) -> str:
    v = _num(value)
    if v is None:
        return MISSING
    return f"{v:+.1f}%" if signed else f"{v:.1f}%"


def count(value: object) -> str:
    v = _num(value)
    return MISSING if v is None else f"{int(v):,}"


def number(value: object) -> str:
    """A generic number: integers as such, floats with up to 4 significant decimals."""
    v = _num(value)
    if v is None:
        return MISSING
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.4g}"


def utc(timestamp: object) -> str:
    v = _num(timestamp)
    if v is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(v))


def duration(seconds: object) -> str:
    v = _num(seconds)
    if v is None:
        return MISSING
    if v < 60:
        return f"{v:.1f} s"
    minutes, secs = divmod(int(round(v)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
