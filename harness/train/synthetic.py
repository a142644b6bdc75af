"""Synthetic portraits: person-like silhouettes on varied backgrounds, deterministic by seed.

Each sample ``i`` is drawn from its own generator seeded by ``(seed, i)``, so the first ``k``
samples of ``render(n, ...)`` equal ``render(k, ...)``. Scenes are drawn at twice the output
resolution (up to 256 px) and area-downsampled: the image gets anti-aliased edges, the alpha
matte is the exact coverage, and the mask is ``alpha >= 0.5``.

A silhouette is a head ellipse with ears, a neck, shoulders and a torso reaching the bottom
edge, and (usually) hair: a cap, sometimes long strands down to the shoulders. Skin, hair and
clothes colours vary, clothes carry stripes / checks / noise, and the background is a gradient
with a texture and distractor shapes (some skin-coloured) so colour alone does not separate
person from background.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import cv2
import numpy as np

GENERATOR_VERSION = 1

_SKIN = np.array(
    [
        [255, 224, 196],
        [241, 194, 160],
        [224, 172, 128],
        [198, 134, 92],
        [161, 102, 64],
        [120, 72, 44],
        [88, 54, 34],
        [236, 188, 180],
    ],
    dtype=np.float32,
)
_HAIR = np.array(
    [
        [20, 16, 14],
        [60, 40, 26],
        [110, 74, 40],
        [200, 160, 96],
        [150, 60, 30],
        [170, 170, 170],
        [40, 30, 60],
    ],
    dtype=np.float32,
)


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _jitter(rng: np.random.Generator, base: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(base + rng.normal(0, amount, 3), 0, 255).astype(np.float32)


def _texture(rng: np.random.Generator, s: int, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A [s, s] texture in about -1..1: none, stripes, checks or smooth noise."""
    yy, xx = grid
    kind = rng.integers(0, 4)
    if kind == 0:
        return np.zeros((s, s), np.float32)
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.03, 0.15) * s
        proj = np.float32(np.cos(angle)) * xx + np.float32(np.sin(angle)) * yy
        return np.sign(np.sin(proj * np.float32(2 * np.pi / period)))
    if kind == 2:
        period = np.float32(rng.uniform(0.05, 0.2) * s)
        return (((xx // period + yy // period) % 2) * 2 - 1).astype(np.float32)
    cells = int(rng.integers(3, 12))
    small = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(small, (s, s), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, s: int, grid: tuple[np.ndarray, np.ndarray]):
    yy, xx = grid
    angle = rng.uniform(0, 2 * np.pi)
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    corners = [ca * x + sa * y for x in (0, s - 1) for y in (0, s - 1)]
    lo, hi = min(corners), max(corners)
    t = ((ca * xx + sa * yy) - lo) / max(hi - lo, 1e-6)
    c1, c2 = _color(rng), _color(rng)
    img = t[..., None] * (c2 - c1)
    img += c1
    img += _texture(rng, s, grid)[..., None] * np.float32(rng.uniform(0, 40))
    for _ in range(int(rng.integers(2, 8))):
        color = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 15) if rng.random() < 0.25 else None
        color = tuple(float(c) for c in (color if color is not None else _color(rng)))
        kind = rng.integers(0, 4)
        p = rng.uniform(0, s, 2).astype(int)
        r = int(rng.uniform(0.04, 0.25) * s)
        if kind == 0:
            cv2.circle(img, (int(p[0]), int(p[1])), r, color, -1)
        elif kind == 1:
            q = p + rng.uniform(-0.3, 0.3, 2) * s
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), color, -1)
        elif kind == 2:
            q = rng.uniform(0, s, 2).astype(int)
            th = max(1, int(rng.uniform(0.005, 0.04) * s))
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), color, th)
        else:
            axes = (r, max(1, int(r * rng.uniform(0.3, 1.0))))
            cv2.ellipse(img, (int(p[0]), int(p[1])), axes, rng.uniform(0, 180), 0, 360, color, -1)
    return img


Shape = Callable[[np.ndarray, object], None]  # draws itself on a canvas with a value


def _ellipse(centre, axes, angle: float = 0.0, start: int = 0, end: int = 360) -> Shape:
    c = (int(centre[0]), int(centre[1]))
    a = (max(1, int(axes[0])), max(1, int(axes[1])))
    return lambda canvas, v: cv2.ellipse(canvas, c, a, angle, start, end, v, -1)


def _rect(p, q) -> Shape:
    p, q = (int(p[0]), int(p[1])), (int(q[0]), int(q[1]))
    return lambda canvas, v: cv2.rectangle(canvas, p, q, v, -1)


def _poly(points) -> Shape:
    pts = np.asarray(points, np.int32)
    return lambda canvas, v: cv2.fillPoly(canvas, [pts], v)


def _union(*shapes: Shape) -> Shape:
    def draw(canvas, v) -> None:
        for shape in shapes:
            shape(canvas, v)

    return draw


def _person(rng: np.random.Generator, s: int):
    """Draw the person: returns (image [s,s,3] float, coverage [s,s] uint8 in {0, 1})."""
    img = np.zeros((s, s, 3), np.float32)
    cover = np.zeros((s, s), np.uint8)

    def fill(shape: Shape, color: np.ndarray, in_mask: bool = True) -> None:
        """Paint ``shape`` in ``color`` (RGB, or an [s, s, 3] texture); add it to the mask."""
        if color.ndim == 1:
            shape(img, tuple(float(c) for c in color))
        else:  # a textured fill: rasterise the shape once, then copy the texture through it
            layer = np.zeros((s, s), np.uint8)
            shape(layer, 1)
            np.copyto(img, color, where=layer[..., None] > 0)
        if in_mask:
            shape(cover, 1)

    scale = rng.uniform(0.75, 1.25)
    cx = s * (0.5 + np.clip(rng.normal(0, 0.12), -0.3, 0.3))
    cy = s * rng.uniform(0.25, 0.45)
    rx = 0.12 * s * scale
    ry = rx * rng.uniform(1.15, 1.4)
    tilt = rng.uniform(-15, 15)
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 12)
    hair = _jitter(rng, _HAIR[rng.integers(len(_HAIR))], 10)
    cloth = _color(rng)
    lean = rng.uniform(-0.08, 0.08) * s

    # Torso: a trapezoid from the shoulders down past the bottom edge, rounded shoulders.
    sh_y = cy + ry * rng.uniform(1.15, 1.5)
    half = rx * rng.uniform(2.0, 3.2)
    neck_w = rx * rng.uniform(0.45, 0.6)
    bot = s * 1.1
    trapezoid = _poly(
        [
            [cx - neck_w, sh_y - 0.1 * rx],
            [cx - half, sh_y + 0.6 * rx],
            [cx - half * rng.uniform(1.0, 1.2) + lean, bot],
            [cx + half * rng.uniform(1.0, 1.2) + lean, bot],
            [cx + half, sh_y + 0.6 * rx],
            [cx + neck_w, sh_y - 0.1 * rx],
        ]
    )
    shoulders = [
        _ellipse((cx + sign * half * 0.55, sh_y + 0.65 * rx), (half * 0.55, rx * 0.75))
        for sign in (-1, 1)
    ]
    texture = _texture(rng, s // 2, _grid(s // 2)) * np.float32(rng.uniform(10, 60))
    texture = cv2.resize(texture, (s, s), interpolation=cv2.INTER_NEAREST)[..., None]
    fill(_union(trapezoid, *shoulders), np.clip(cloth + texture, 0, 255))
    # Neck and, often, a V neckline.
    fill(_rect((cx - neck_w, cy + 0.5 * ry), (cx + neck_w, sh_y)), skin)
    if rng.random() < 0.6:
        depth = rx * rng.uniform(0.3, 1.0)
        fill(_poly([[cx - neck_w, sh_y - 1], [cx + neck_w, sh_y - 1], [cx, sh_y + depth]]), skin)
    # Long hair behind the head, down to the shoulders.
    if rng.random() < 0.35:
        length = cy + ry * rng.uniform(1.0, 2.2)
        fill(_rect((cx - rx * 1.15, cy), (cx + rx * 1.15, length)), hair)
    # Ears, head, and face details (image only).
    for sign in (-1, 1):
        fill(_ellipse((cx + sign * rx * 0.95, cy + 0.1 * ry), (rx * 0.22, ry * 0.25)), skin)
    fill(_ellipse((cx, cy), (rx, ry), tilt), skin)
    for sign in (-1, 1):
        eye = _ellipse((cx + sign * rx * 0.38, cy - ry * 0.05), (rx * 0.14, ry * 0.07))
        fill(eye, _jitter(rng, np.zeros(3), 20), in_mask=False)
    fill(_ellipse((cx, cy + ry * 0.5), (rx * 0.3, ry * 0.06)), _jitter(rng, skin * 0.6, 10), False)
    if rng.random() < 0.85:  # hair cap: upper half of a slightly larger, raised ellipse
        cap_axes = (rx * rng.uniform(1.05, 1.2), ry * rng.uniform(0.75, 0.95))
        cap_centre = (cx, cy - ry * rng.uniform(0.25, 0.45))
        fill(_ellipse(cap_centre, cap_axes, tilt, 180, 360), hair)
    return img, cover


@functools.cache
def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx) pixel coordinates as [s, 1] and [1, s]: broadcast instead of full grids."""
    coords = np.arange(s, dtype=np.float32)
    return coords[:, None], coords[None, :]


def _sample(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
    img = _background(rng, size, _grid(size))
    # The person is drawn at twice the resolution (up to 512 px) and area-downsampled with
    # premultiplied colour, so its edges are anti-aliased and alpha is the exact coverage.
    factor = 2 if size <= 256 else 1
    person, cover = _person(rng, size * factor)
    if factor != 1:
        person *= cover[..., None]
        person = cv2.resize(person, (size, size), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(cover * np.uint8(255), (size, size), interpolation=cv2.INTER_AREA)
    else:
        alpha = cover * np.uint8(255)
    yy, xx = _grid(size)  # lighting: a soft gradient over the person
    gx, gy = np.float32(rng.uniform(-0.25, 0.25) / size), np.float32(rng.uniform(-0.2, 0.2) / size)
    person *= (1 + gx * (xx - size / 2) + gy * (yy - size / 2))[..., None]
    a = alpha.astype(np.float32)[..., None] / np.float32(255)
    if factor == 1:
        person *= a
    img *= 1 - a
    img += person
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= np.float32(rng.uniform(0, 8))
    img *= np.float32(rng.uniform(0.7, 1.3))
    img += noise + np.float32(rng.uniform(-30, 30))
    return np.clip(img, 0, 255).astype(np.uint8), alpha


def render(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB images uint8 [n, size, size, 3] and alpha mattes uint8 [n, size, size] 0..255."""
    images = np.empty((n, size, size, 3), np.uint8)
    alphas = np.empty((n, size, size), np.uint8)
    for i in range(n):
        images[i], alphas[i] = _sample(seed, i, size)
    return images, alphas


def prior_masks(masks: np.ndarray, keys: Sequence[Sequence[int]]) -> np.ndarray:
    """Previous-frame style prior masks uint8 0..255 for 4-channel (video) models.

    Each prior is the mask ({0, 1}) moved by a small random affine warp, grown or shrunk, and
    blurred; one in five is empty (the first frame of a video has no prior). ``keys[i]`` (a
    tuple of non-negative ints) seeds sample ``i``, so priors do not depend on the batch.
    """
    n, h, w = masks.shape
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        rng = np.random.default_rng([*keys[i], 4])
        if rng.random() < 0.2:
            continue
        angle, scale = rng.uniform(-8, 8), rng.uniform(0.92, 1.08)
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        mat[:, 2] += rng.uniform(-0.06, 0.06, 2) * (w, h)
        warped = cv2.warpAffine(
            masks[i].astype(np.uint8) * 255,
            mat,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        k = int(rng.integers(1, max(2, w // 32) + 1)) * 2 + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        op = cv2.dilate if rng.random() < 0.5 else cv2.erode
        warped = op(warped, kernel)
        out[i] = cv2.GaussianBlur(warped, (0, 0), sigmaX=max(0.5, w / 128))
    return out
