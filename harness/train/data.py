"""Datasets: a folder of images/ + masks/ paired by file stem, or synthetic portraits.

Everything here is numpy/OpenCV; nothing imports TensorFlow. A dataset is held in memory as
uint8 arrays at the training size (images [n, s, s, C], masks [n, s, s] in {0, 1}, optional
alpha mattes [n, s, s] 0..255), with a fingerprint that identifies the data it came from.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from harness.errors import UsageError
from harness.train import synthetic

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_NORMALIZATION: dict[str, list[float]] = {"mean": [127.5] * 3, "std": [127.5] * 3}
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Dataset:
    """Images, masks and (optionally) alpha mattes at one size, with where they came from."""

    images: np.ndarray  # uint8 [n, s, s, channels]
    masks: np.ndarray  # uint8 [n, s, s] in {0, 1}
    alphas: np.ndarray | None  # uint8 [n, s, s] 0..255, or None
    names: tuple[str, ...]  # one per sample: file stem, or "synthetic-000042"
    source: str  # "synthetic" or the folder path
    fingerprint: str  # "sha256:..."

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Sequence[int]) -> Dataset:
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            images=self.images[idx],
            masks=self.masks[idx],
            alphas=None if self.alphas is None else self.alphas[idx],
            names=tuple(self.names[i] for i in idx),
        )


def normalization_for(channels: int) -> dict[str, list[float]]:
    """The normalization every harness model uses: ``(pixel - 127.5) / 127.5`` per channel."""
    return {"mean": [127.5] * channels, "std": [127.5] * channels}


def normalize(images_uint8: np.ndarray, normalization: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Model input float32 from uint8 pixels: ``(pixel - mean) / std`` per channel (last axis)."""
    images = np.asarray(images_uint8)
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    channels = images.shape[-1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise UsageError(
            f"normalization has {mean.size} mean / {std.size} std values for {channels}-channel "
            "images"
        )
    if np.any(std == 0):
        raise UsageError("normalization std must not be 0")
    return (images.astype(np.float32) - mean) / std


def _check_channels(channels: int) -> None:
    if channels not in (3, 4):
        raise UsageError(f"channels must be 3 (RGB) or 4 (RGB + prior mask), not {channels}")


def _check_size(size: int) -> None:
    if size < 8:
        raise UsageError(f"image size must be at least 8 pixels, not {size}")


def synthetic_fingerprint(n: int, size: int, seed: int, channels: int) -> str:
    text = f"synthetic:v{synthetic.GENERATOR_VERSION}:seed={seed}:n={n}:size={size}:ch={channels}"
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def synthetic_dataset(n: int, size: int, seed: int, channels: int = 3) -> Dataset:
    """``n`` synthetic portraits (see :mod:`harness.train.synthetic`), deterministic for a seed."""
    _check_channels(channels)
    _check_size(size)
    if n < 1:
        raise UsageError(f"the synthetic dataset needs at least 1 sample, not {n}")
    images, alphas = synthetic.render(n, size, seed)
    masks = (alphas >= 128).astype(np.uint8)
    if channels == 4:
        prior = synthetic.prior_masks(masks, [(seed, i) for i in range(n)])
        images = np.concatenate([images, prior[..., None]], axis=-1)
    return Dataset(
        images=images,
        masks=masks,
        alphas=alphas,
        names=tuple(f"synthetic-{i:06d}" for i in range(n)),
        source=SYNTHETIC,
        fingerprint=synthetic_fingerprint(n, size, seed, channels),
    )


def synthetic_portraits(
    n: int, size: int, seed: int, channels: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, size, size, channels], masks uint8 [n, size, size] in {0, 1})``."""
    ds = synthetic_dataset(n, size, seed, channels)
    return ds.images, ds.masks


def _listing(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem; two files with one stem are an error."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in files:
            raise UsageError(
                f"{folder} has two files for one sample: {files[path.stem].name} and {path.name}"
            )
        files[path.stem] = path
    return files


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


MAX_IMAGE_FILE = 256 << 20  # bytes: a larger "image" file is refused, not read


def _read(path: Path) -> bytes:
    """An image file's bytes: a regular file (not a FIFO, not /dev/zero behind a link),
    not empty, at most MAX_IMAGE_FILE bytes."""
    try:
        st = path.stat()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file")
    if st.st_size == 0:
        raise UsageError(f"{path} is empty")
    if st.st_size > MAX_IMAGE_FILE:
        raise UsageError(f"{path} is {st.st_size >> 20} MiB: not an image this harness reads")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _decode(data: bytes, path: Path, flags: int) -> np.ndarray:
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    except cv2.error:
        array = None
    if array is None or array.size == 0:
        raise UsageError(f"cannot decode {path} as an image")
    return array


def _mask_plane(mask: np.ndarray) -> np.ndarray:
    """A mask file's pixels as one uint8 plane 0..255 (0/1 masks are scaled up)."""
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
    if mask.dtype == np.uint16:
        mask = (mask // 257).astype(np.uint8)
    elif mask.dtype != np.uint8:
        mask = np.clip(mask, 0, 255).astype(np.uint8)
    if mask.max() <= 1:
        mask = mask * np.uint8(255)
    return mask


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    h, w = array.shape[:2]
    if (h, w) == (size, size):
        return array
    shrink = h > size or w > size
    return cv2.resize(
        array, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _stem_key(stem: str) -> tuple[int, int]:
    digest = hashlib.sha256(stem.encode()).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


def folder_dataset(path: str | Path, size: int, channels: int = 3) -> Dataset:
    """Read ``path/images`` + ``path/masks`` (+ optional ``path/mattes``) paired by file stem.

    Masks may be 0/255 or 0/1, grey or colour (any non-black is foreground), any size; each
    image and its mask must have the same size. Both are resized to ``size`` x ``size``.
    Mattes (alpha 0..255, same stems) enable the matting loss. With ``channels=4`` the 4th
    channel is a prior mask derived from the mask, seeded by the file stem.
    """
    _check_channels(channels)
    _check_size(size)
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"data folder not found: {root}")
    folders = {name: root / name for name in ("images", "masks")}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise UsageError(
                f"{root} has no {name}/ folder (expected images/ and masks/ paired by file stem)"
            )
    images = _listing(folders["images"])
    masks = _listing(folders["masks"])
    if not images:
        raise UsageError(
            f"{folders['images']} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    missing = sorted(set(images) - set(masks))
    if missing:
        raise UsageError(
            f"missing mask in {folders['masks']} for {len(missing)} image(s): {_few(missing)}"
        )
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise UsageError(
            f"{len(orphans)} mask(s) without an image in {folders['images']}: {_few(orphans)}"
        )
    mattes: dict[str, Path] | None = None
    if (root / "mattes").is_dir():
        mattes = _listing(root / "mattes")
        lacking = sorted(set(images) - set(mattes))
        if lacking:
            raise UsageError(
                f"missing matte in {root / 'mattes'} for {len(lacking)} image(s): {_few(lacking)}"
            )

    stems = sorted(images)
    digest = hashlib.sha256()
    out_images = np.empty((len(stems), size, size, 3), np.uint8)
    out_masks = np.empty((len(stems), size, size), np.uint8)
    out_alphas = None if mattes is None else np.empty((len(stems), size, size), np.uint8)
    for i, stem in enumerate(stems):
        pairs = [("image", images[stem]), ("mask", masks[stem])]
        if mattes is not None:
            pairs.append(("matte", mattes[stem]))
        planes: dict[str, np.ndarray] = {}
        for kind, file in pairs:
            data = _read(file)
            digest.update(f"{kind}/{file.name}:{len(data)}:".encode())
            digest.update(data)
            flags = cv2.IMREAD_COLOR if kind == "image" else cv2.IMREAD_UNCHANGED
            planes[kind] = _decode(data, file, flags)
        h, w = planes["image"].shape[:2]
        for kind in ("mask", "matte"):
            if kind in planes and planes[kind].shape[:2] != (h, w):
                mh, mw = planes[kind].shape[:2]
                raise UsageError(
                    f"size mismatch: {images[stem].name} is {w}x{h} but its {kind} is {mw}x{mh}"
                )
        out_images[i] = _resize(cv2.cvtColor(planes["image"], cv2.COLOR_BGR2RGB), size)
        out_masks[i] = _resize(_mask_plane(planes["mask"]), size) >= 128
        if out_alphas is not None:
            out_alphas[i] = _resize(_mask_plane(planes["matte"]), size)
    images_out = out_images
    if channels == 4:
        prior = synthetic.prior_masks(out_masks, [_stem_key(s) for s in stems])
        images_out = np.concatenate([out_images, prior[..., None]], axis=-1)
    return Dataset(
        images=images_out,
        masks=out_masks,
        alphas=out_alphas,
        names=tuple(stems),
        source=str(root),
        fingerprint="sha256:" + digest.hexdigest(),
    )


def load_folder(path: str | Path, size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, size, size, channels], masks uint8 [n, size, size] in {0, 1})``."""
    ds = folder_dataset(path, size, channels)
    return ds.images, ds.masks


def split(dataset: Dataset, val_ratio: float, seed: int) -> tuple[Dataset, Dataset]:
    """A deterministic (train, val) split: samples are ranked by sha256(seed, name).

    A sample's side depends only on the seed, its name and the dataset size, never on file
    order. ``val_ratio`` must leave at least one sample on each side.
    """
    if not 0 < val_ratio < 1:
        raise UsageError(f"--val-ratio must be between 0 and 1 (exclusive), not {val_ratio}")
    n = len(dataset)
    n_val = max(1, round(n * val_ratio))
    if n_val >= n:
        raise UsageError(
            f"{n} sample(s) cannot be split with --val-ratio {val_ratio}: need at least one on each side"
        )
    ranked = sorted(
        range(n), key=lambda i: hashlib.sha256(f"{seed}:{dataset.names[i]}".encode()).digest()
    )
    val_idx = sorted(ranked[:n_val])
    train_idx = sorted(ranked[n_val:])
    return dataset.subset(train_idx), dataset.subset(val_idx)
