"""Datasets: a folder in one of the layouts of :mod:`harness.train.layouts`, or synthetic.

Everything here is numpy/OpenCV; nothing imports TensorFlow. A dataset is held in memory as
uint8 arrays at the training size (images [n, s, s, C], masks [n, s, s] in {0, 1}, optional
alpha mattes [n, s, s] 0..255), with a fingerprint that identifies the data it came from.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from harness.errors import UsageError
from harness.train import layouts, synthetic

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
    layout: str = SYNTHETIC  # "synthetic" or the folder's layout (harness.train.layouts)
    val_names: frozenset[str] | None = None  # a validation split the dataset defines
    split_from: str | None = None  # where that split comes from (e.g. "eg1800_test.txt")

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


def _files(sample: layouts.Sample) -> list[tuple[str, Path]]:
    kinds = (("image", sample.image), ("mask", sample.mask), ("matte", sample.matte))
    return [(kind, file) for kind, file in kinds if file is not None]


def _digest(digest, kind: str, file: Path, data: bytes) -> None:
    """The fingerprint's record of one file: ``kind/name:size:`` then its bytes."""
    digest.update(f"{kind}/{file.name}:{len(data)}:".encode())
    digest.update(data)


def fingerprint_files(samples: Sequence[layouts.Sample]) -> str:
    """The fingerprint :func:`folder_dataset` computes, from the files' bytes alone."""
    digest = hashlib.sha256()
    for sample in samples:
        for kind, file in _files(sample):
            _digest(digest, kind, file, _read(file))
    return "sha256:" + digest.hexdigest()


def _read_sample(sample: layouts.Sample, size: int) -> tuple[list[tuple[str, Path, bytes]], tuple]:
    """Decode one sample: ([(kind, file, bytes)] for the fingerprint, (image, mask, alpha))."""
    raw: list[tuple[str, Path, bytes]] = []
    planes: dict[str, np.ndarray] = {}
    for kind, file in _files(sample):
        data = _read(file)
        raw.append((kind, file, data))
        flags = cv2.IMREAD_COLOR if kind == "image" else cv2.IMREAD_UNCHANGED
        planes[kind] = _decode(data, file, flags)
    h, w = planes["image"].shape[:2]
    for kind in ("mask", "matte"):
        if kind in planes and planes[kind].shape[:2] != (h, w):
            mh, mw = planes[kind].shape[:2]
            raise UsageError(
                f"size mismatch: {sample.image.name} is {w}x{h} but its {kind} is {mw}x{mh}"
            )
    image = _resize(cv2.cvtColor(planes["image"], cv2.COLOR_BGR2RGB), size)
    alpha = None if "matte" not in planes else _resize(_matte_plane(planes["matte"]), size)
    labels = _mask_plane(planes["mask"]) if "mask" in planes else None
    mask = alpha >= 128 if labels is None else _resize(labels, size) >= 128
    return raw, (image, mask, alpha)


def _matte_plane(matte: np.ndarray) -> np.ndarray:
    """An alpha matte's pixels 0..255: the alpha channel of an RGBA file, else its grey."""
    if matte.ndim == 3 and matte.shape[2] == 4:
        matte = matte[..., 3]
    return _mask_plane(matte)


def _decode_all(samples: Sequence[layouts.Sample], size: int):
    """(images [n, s, s, 3], masks, alphas or None, fingerprint), decoded on a thread pool."""
    with_matte = all(s.matte is not None for s in samples)
    digest = hashlib.sha256()
    n = len(samples)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    alphas = np.empty((n, size, size), np.uint8) if with_matte else None
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # OpenCV decodes without holding the GIL
        for i, (raw, (image, mask, alpha)) in enumerate(
            pool.map(lambda s: _read_sample(s, size), samples)
        ):
            for kind, file, data in raw:
                _digest(digest, kind, file, data)
            images[i], masks[i] = image, mask
            if alphas is not None:
                alphas[i] = alpha
    return images, masks, alphas, "sha256:" + digest.hexdigest()


def _cache_file(cache: str | Path, layout: str, fingerprint: str, size: int, channels: int):
    return (
        Path(cache)
        / f"{layout}-{fingerprint.removeprefix('sha256:')[:16]}-{size}px-{channels}ch.npz"
    )


def _load_cached(file: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file written for these sample names, or None (absent, stale or
    unreadable: the caller decodes again and rewrites it)."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError):
        return None
    if tuple(arrays.get("names", np.array([])).tolist()) != names:
        return None
    return arrays


def _save_cached(file: Path, dataset: Dataset) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"images": dataset.images, "masks": dataset.masks, "names": np.array(dataset.names)}
    if dataset.alphas is not None:
        arrays["alphas"] = dataset.alphas
    tmp = file.with_name(f".{file.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(file)


def folder_dataset(
    path: str | Path,
    size: int,
    channels: int = 3,
    layout: str | None = None,
    cache: str | Path | None = None,
) -> Dataset:
    """Read a dataset folder in ``layout`` (None: detected; see :mod:`harness.train.layouts`).

    Masks may be 0/255 or 0/1, grey or colour (any non-black is foreground), any size; each
    image and its mask or matte must have the same size. All are resized to ``size`` x
    ``size``. Alpha mattes (0..255) enable the matting loss; a sample with a matte and no
    mask takes ``alpha >= 128`` as its mask. With ``channels=4`` the 4th channel is a prior
    mask derived from the mask, seeded by the sample name. Files are decoded on a thread pool.
    With ``cache`` (a folder), the decoded arrays are kept there as ``.npz`` and reused while
    the files' fingerprint, the size and the channels match (the files are still read and
    hashed, not decoded).
    """
    _check_channels(channels)
    _check_size(size)
    root = Path(path)
    found = layouts.list_samples(root, layout)
    names = tuple(s.name for s in found.samples)
    if len({s.matte is None for s in found.samples}) > 1:
        raise UsageError(f"{root}: some samples have an alpha matte and some do not")
    meta = {"layout": found.layout, "val_names": found.val_names, "split_from": found.split_from}
    cached, file = None, None
    if cache is not None:
        fingerprint = fingerprint_files(found.samples)
        file = _cache_file(cache, found.layout, fingerprint, size, channels)
        cached = _load_cached(file, names)
    if cached is not None:
        return Dataset(
            images=cached["images"],
            masks=cached["masks"],
            alphas=cached.get("alphas"),
            names=names,
            source=str(root),
            fingerprint=fingerprint,
            **meta,
        )
    images, masks, alphas, digest = _decode_all(found.samples, size)
    if channels == 4:
        prior = synthetic.prior_masks(masks, [_stem_key(s) for s in names])
        images = np.concatenate([images, prior[..., None]], axis=-1)
    dataset = Dataset(images, masks, alphas, names, str(root), digest, **meta)
    if file is not None:
        if digest != fingerprint:
            raise UsageError(f"{root} changed while it was being read; run again")
        _save_cached(file, dataset)
    return dataset


def load_folder(path: str | Path, size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, size, size, channels], masks uint8 [n, size, size] in {0, 1})``."""
    ds = folder_dataset(path, size, channels)
    return ds.images, ds.masks


def split(dataset: Dataset, val_ratio: float, seed: int) -> tuple[Dataset, Dataset]:
    """A deterministic (train, val) split: samples are ranked by sha256(seed, name).

    A sample's side depends only on the seed, its name and the dataset size, never on file
    order. ``val_ratio`` must leave at least one sample on each side. A dataset that defines
    its own validation split (``val_names``: EG1800's test list, PFCN+'s testing/) keeps it,
    and ``val_ratio`` is not used.
    """
    if dataset.val_names is not None:
        val_idx = [i for i, name in enumerate(dataset.names) if name in dataset.val_names]
        train_idx = [i for i, name in enumerate(dataset.names) if name not in dataset.val_names]
        if not val_idx or not train_idx:
            side = "validation" if not val_idx else "training"
            raise UsageError(f"{dataset.source}: {dataset.split_from} leaves no {side} sample")
        return dataset.subset(train_idx), dataset.subset(val_idx)
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
