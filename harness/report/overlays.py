"""Mask overlays of one eval input: input, desktop mask, device mask, difference (numpy/cv2).

Colours: green = foreground; magenta = NaN/Inf in the device output; in the difference panel
red = foreground only on the device, blue = foreground only on the desktop.
"""

from __future__ import annotations

import base64

import numpy as np

from harness.report.data import Sample

DISPLAY = 144  # pixels on the long side
GREEN = np.array([40, 200, 70], np.float32)
RED = np.array([230, 40, 40], np.uint8)
BLUE = np.array([40, 90, 240], np.uint8)
MAGENTA = np.array([230, 0, 230], np.uint8)

PANELS = ("input", "desktop", "device", "difference")
LEGEND = (
    "Green: foreground; magenta: NaN/Inf in the device output; in the difference, "
    "red = foreground on the device only, blue = foreground on the desktop only"
)


def _rgb(image: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    h, w = shape
    if image is None:
        return np.full((h, w, 3), 128, np.uint8)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] > 3:
        image = image[..., :3]
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _tint(image: np.ndarray, mask: np.ndarray, bad=None) -> np.ndarray:
    out = image.astype(np.float32)
    out[mask] = out[mask] * 0.45 + GREEN * 0.55
    out = out.astype(np.uint8)
    if bad is not None:
        out[bad] = MAGENTA
    return out


def _difference(image: np.ndarray, ref: np.ndarray, dev: np.ndarray, bad) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.5 + 64
    out = np.repeat(grey, 3, axis=2).astype(np.uint8)
    out[dev & ~ref] = RED
    out[ref & ~dev] = BLUE
    if bad is not None:
        out[bad] = MAGENTA
    return out


def _uri(rgb: np.ndarray) -> str:
    import cv2

    h, w = rgb.shape[:2]
    scale = DISPLAY / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    rgb = cv2.resize(rgb, size, interpolation=interp)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def overlay_panels(sample: Sample) -> dict[str, str]:
    """``{panel name: data URI}`` for :data:`PANELS`, all at the mask's aspect ratio."""
    if sample.ref_mask is None or sample.device_mask is None:
        return {}
    ref = np.asarray(sample.ref_mask, bool)
    dev = np.asarray(sample.device_mask, bool)
    if dev.shape != ref.shape:
        return {}
    image = _rgb(sample.image, ref.shape)
    bad = None
    if sample.device_fg is not None and np.shape(sample.device_fg) == ref.shape:
        bad = ~np.isfinite(np.asarray(sample.device_fg, np.float64))
    return {
        "input": _uri(image),
        "desktop": _uri(_tint(image, ref)),
        "device": _uri(_tint(image, dev, bad)),
        "difference": _uri(_difference(image, ref, dev, bad)),
    }
