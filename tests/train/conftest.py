"""Shared fixtures for the trainer tests: tiny folder datasets written with OpenCV."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest


def write_pair(
    root: Path,
    stem: str,
    size: tuple[int, int] = (40, 30),
    mask_size: tuple[int, int] | None = None,
    *,
    ones: bool = False,
    image_ext: str = ".png",
) -> None:
    """One image + mask pair (width, height); the mask is a filled ellipse, 0/255 or 0/1."""
    w, h = size
    mw, mh = mask_size or size
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((mh, mw), np.uint8)
    cv2.ellipse(mask, (mw // 2, mh // 2), (mw // 4, mh // 3), 0, 0, 360, 1 if ones else 255, -1)
    cv2.imwrite(str(root / "images" / f"{stem}{image_ext}"), image)
    cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask)


@pytest.fixture
def make_pair():
    """``make_pair(root, stem, size=(w, h), mask_size=None, ones=False, image_ext=".png")``."""
    return write_pair


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A valid folder dataset of 6 pairs."""
    root = tmp_path / "data"
    for i in range(6):
        write_pair(root, f"img{i}", ones=i % 2 == 0, image_ext=".jpg" if i < 3 else ".png")
    return root
