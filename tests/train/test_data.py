"""Folder datasets (pairing errors, mask formats), synthetic portraits, split, normalize."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.errors import HarnessError, UsageError
from harness.train import data


def test_load_folder_pairs_resizes_and_binarises(folder: Path) -> None:
    images, masks = data.load_folder(folder, 32)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (6, 32, 32) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}
    # 0/1 masks (even samples) and 0/255 masks (odd) give the same ellipse.
    assert np.array_equal(masks[0], masks[1])
    assert 0.2 < masks.mean() < 0.5


def test_load_folder_reads_rgb_order(make_pair, tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_pair(root, "a", (16, 16))
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(root / "images" / "a.png"), bgr)
    images, _ = data.load_folder(root, 16)
    assert images[0, 0, 0].tolist() == [200, 0, 0]


def test_colour_masks_any_non_black_is_foreground(make_pair, tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_pair(root, "a", (16, 16))
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = (0, 0, 255)
    cv2.imwrite(str(root / "masks" / "a.png"), mask)
    _, masks = data.load_folder(root, 16)
    assert masks[0].sum() == 64 and masks[0, 4:12, 4:12].all()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-folder", "data folder not found"),
        ("no-masks-dir", "no masks/ folder"),
        ("empty", "has no image files"),
        ("missing-mask", "missing mask"),
        ("orphan-mask", "without an image"),
        ("size-mismatch", "size mismatch: b.png is 40x30 but its mask is 20x30"),
        ("duplicate-stem", "two files for one sample"),
        ("undecodable", "cannot decode"),
    ],
)
def test_folder_errors_are_one_line_usage_errors(
    make_pair, tmp_path: Path, setup: str, message: str
) -> None:
    root = tmp_path / "d"
    if setup != "missing-folder":
        make_pair(root, "a")
    if setup == "no-masks-dir":
        for f in (root / "masks").iterdir():
            f.unlink()
        (root / "masks").rmdir()
    elif setup == "empty":
        for sub in ("images", "masks"):
            for f in (root / sub).iterdir():
                f.unlink()
    elif setup == "missing-mask":
        make_pair(root, "b")
        (root / "masks" / "b.png").unlink()
    elif setup == "orphan-mask":
        make_pair(root, "b")
        (root / "images" / "b.png").unlink()
    elif setup == "size-mismatch":
        make_pair(root, "b", (40, 30), mask_size=(20, 30))
    elif setup == "duplicate-stem":
        make_pair(root, "a", image_ext=".jpg")
    elif setup == "undecodable":
        (root / "images" / "a.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match=message) as info:
        data.load_folder(root, 32)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_missing_mask_message_names_the_files(make_pair, tmp_path: Path) -> None:
    root = tmp_path / "d"
    for stem in ("a", "b", "c"):
        make_pair(root, stem)
    (root / "masks" / "b.png").unlink()
    (root / "masks" / "c.png").unlink()
    with pytest.raises(UsageError, match=r"2 image\(s\): b, c"):
        data.load_folder(root, 32)


def test_mattes_folder_gives_alphas_and_must_be_complete(folder: Path) -> None:
    (folder / "mattes").mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / "mattes" / f"img{i}.png"), np.full((30, 40), 100, np.uint8))
    ds = data.folder_dataset(folder, 32)
    assert ds.alphas is not None and ds.alphas.shape == (6, 32, 32)
    assert np.all(ds.alphas == 100)
    (folder / "mattes" / "img3.png").unlink()
    with pytest.raises(UsageError, match="missing matte"):
        data.folder_dataset(folder, 32)


def test_folder_fingerprint_follows_bytes(folder: Path) -> None:
    first = data.folder_dataset(folder, 32).fingerprint
    assert data.folder_dataset(folder, 64).fingerprint == first  # size is config, not data
    image = cv2.imread(str(folder / "images" / "img4.png"))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(folder / "images" / "img4.png"), image)
    assert data.folder_dataset(folder, 32).fingerprint != first


def test_four_channel_folder_adds_a_prior_near_the_mask(folder: Path) -> None:
    images, masks = data.load_folder(folder, 64, channels=4)
    assert images.shape == (6, 64, 64, 4)
    again, _ = data.load_folder(folder, 64, channels=4)
    assert np.array_equal(images, again)  # priors are seeded by file stem
    priors = images[..., 3] >= 128
    for prior, mask in zip(priors, masks, strict=True):
        if prior.any():  # an empty prior (first frame) is allowed
            overlap = np.logical_and(prior, mask).sum() / np.logical_or(prior, mask).sum()
            assert overlap > 0.5


def test_synthetic_is_deterministic_and_prefix_stable() -> None:
    a_img, a_mask = data.synthetic_portraits(6, 64, seed=3)
    b_img, b_mask = data.synthetic_portraits(6, 64, seed=3)
    c_img, _ = data.synthetic_portraits(6, 64, seed=4)
    d_img, d_mask = data.synthetic_portraits(3, 64, seed=3)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)
    assert np.array_equal(a_img[:3], d_img) and np.array_equal(a_mask[:3], d_mask)


def test_synthetic_masks_look_like_portraits() -> None:
    images, masks = data.synthetic_portraits(40, 96, seed=0)
    assert images.shape == (40, 96, 96, 3) and masks.shape == (40, 96, 96)
    assert set(np.unique(masks)) == {0, 1}
    cover = masks.mean(axis=(1, 2))
    assert np.all(cover > 0.08) and np.all(cover < 0.8)
    # A bust: the person touches the bottom edge, not the top, and is one blob.
    assert masks[:, -1, :].any(axis=1).all()
    assert masks[:, 0, :].mean() < 0.05
    for m in masks[:10]:
        n_labels, _ = cv2.connectedComponents(m)
        assert n_labels == 2
    # The person is not separable from the background by a single colour channel.
    fg = images[masks == 1].mean(axis=0)
    bg = images[masks == 0].mean(axis=0)
    assert np.abs(fg - bg).max() < 60


def test_synthetic_is_fast_enough() -> None:
    start = time.perf_counter()
    data.synthetic_portraits(200, 128, seed=0)
    assert time.perf_counter() - start < 10  # ~0.6 s on an idle core; generous for shared CPUs


def test_synthetic_four_channels_and_fingerprint() -> None:
    ds = data.synthetic_dataset(4, 64, seed=1, channels=4)
    assert ds.images.shape == (4, 64, 64, 4) and ds.alphas is not None
    assert ds.fingerprint == data.synthetic_dataset(4, 64, seed=1, channels=4).fingerprint
    assert ds.fingerprint != data.synthetic_dataset(4, 64, seed=2, channels=4).fingerprint
    assert ds.fingerprint != data.synthetic_dataset(5, 64, seed=1, channels=4).fingerprint


@pytest.mark.parametrize("bad", [{"channels": 5}, {"n": 0}])
def test_synthetic_rejects_bad_arguments(bad: dict) -> None:
    kwargs = {"n": 2, "size": 32, "seed": 0, "channels": 3, **bad}
    with pytest.raises(HarnessError):
        data.synthetic_portraits(**kwargs)


def test_split_is_deterministic_disjoint_and_order_free() -> None:
    ds = data.synthetic_dataset(30, 16, seed=0)
    train, val = data.split(ds, 0.2, seed=7)
    assert len(val) == 6 and len(train) == 24
    assert not set(train.names) & set(val.names)
    again_train, again_val = data.split(ds, 0.2, seed=7)
    assert again_val.names == val.names
    reordered = ds.subset(list(reversed(range(30))))
    assert set(data.split(reordered, 0.2, seed=7)[1].names) == set(val.names)
    assert set(data.split(ds, 0.2, seed=8)[1].names) != set(val.names)
    i = ds.names.index(val.names[0])
    assert np.array_equal(val.images[0], ds.images[i])


@pytest.mark.parametrize("ratio", [0.0, 1.0, 0.99])
def test_split_needs_samples_on_both_sides(ratio: float) -> None:
    ds = data.synthetic_dataset(3, 16, seed=0)
    with pytest.raises(UsageError):
        data.split(ds, ratio, seed=0)


def test_normalize() -> None:
    pixels = np.array([[[[0, 127.5, 255]]]], dtype=np.float32).astype(np.uint8)
    out = data.normalize(pixels, {"mean": [127.5] * 3, "std": [127.5] * 3})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [-1.0, (127 - 127.5) / 127.5, 1.0])
    with pytest.raises(UsageError, match="4-channel"):
        data.normalize(np.zeros((1, 2, 2, 4), np.uint8), data.DEFAULT_NORMALIZATION)
