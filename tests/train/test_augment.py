"""Augmentations: image and mask stay aligned; photometric ones leave labels alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import tfcompat
from harness.errors import UsageError
from harness.train import augment

GEOMETRIC = frozenset(n for n, a in augment.AUGMENTATIONS.items() if a.geometric)
PHOTOMETRIC = frozenset(augment.ORDER) - GEOMETRIC


def _run(images, labels, seed, enabled):
    tf = tfcompat.tf()
    out_images, out_labels = augment.augment(
        images.astype(np.float32), labels.astype(np.float32), tf.constant(seed, tf.int64), enabled
    )
    return out_images.numpy(), out_labels.numpy()


@st.composite
def scenes(draw):
    """A batch of asymmetric masks (an ellipse and a bar), with the mask encoded in the image."""
    size = draw(st.sampled_from([24, 32, 40]))
    batch = draw(st.integers(1, 3))
    masks = np.zeros((batch, size, size), np.uint8)
    for m in masks:
        cx, cy = draw(st.integers(4, size - 5)), draw(st.integers(4, size // 2))
        ax, ay = draw(st.integers(2, size // 3)), draw(st.integers(2, size // 3))
        cv2.ellipse(m, (cx, cy), (ax, ay), draw(st.integers(0, 179)), 0, 360, 1, -1)
        x0 = draw(st.integers(0, size - 4))
        m[size * 2 // 3 :, x0 : x0 + draw(st.integers(2, size // 2))] = 1
    seed = [draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))]
    return masks, seed


@settings(max_examples=25, deadline=None, database=None)
@given(scenes(), st.sets(st.sampled_from(sorted(GEOMETRIC)), min_size=1))
def test_geometric_augmentations_keep_image_and_mask_aligned(scene, enabled) -> None:
    masks, seed = scene
    # The image encodes the mask (255 where foreground) plus position ramps in the other
    # channels, so any transform applied to one and not the other shows up.
    size = masks.shape[1]
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    images = np.stack(
        [
            masks * 255.0,
            np.broadcast_to(ramp, masks.shape),
            np.broadcast_to(ramp[:, None], masks.shape),
        ],
        axis=-1,
    )
    out_images, out_labels = _run(images, masks[..., None], seed, enabled | {"rotate-scale"})
    from_image = out_images[..., 0] >= 127.5
    from_mask = out_labels[..., 0] >= 0.5
    clear = np.abs(out_labels[..., 0] - 0.5) > 1e-3  # ignore float ties exactly at the threshold
    assert np.array_equal(from_image[clear], from_mask[clear])
    np.testing.assert_allclose(out_images[..., 0] / 255.0, out_labels[..., 0], atol=1e-4)
    # Labels stay in range and the frame keeps the size.
    assert out_labels.shape == masks[..., None].shape
    assert out_labels.min() >= 0 and out_labels.max() <= 1


@settings(max_examples=10, deadline=None, database=None)
@given(scenes())
def test_photometric_augmentations_never_touch_labels_or_prior(scene) -> None:
    masks, seed = scene
    rng = np.random.default_rng(seed[0])
    images = rng.uniform(0, 255, (*masks.shape, 4)).astype(np.float32)  # RGB + prior
    with_alpha = np.stack([masks, rng.uniform(0, 1, masks.shape)], axis=-1)
    out_images, out_labels = _run(images, with_alpha, seed, PHOTOMETRIC)
    np.testing.assert_array_equal(out_labels, with_alpha.astype(np.float32))
    np.testing.assert_array_equal(out_images[..., 3], images[..., 3])
    assert out_images.min() >= 0 and out_images.max() <= 255


def test_all_augmentations_change_images_and_are_deterministic() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    masks = (rng.uniform(size=(8, 32, 32, 1)) > 0.5).astype(np.float32)
    a = _run(images, masks, [1, 2], augment.ORDER)
    b = _run(images, masks, [1, 2], augment.ORDER)
    c = _run(images, masks, [1, 3], augment.ORDER)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], images)


@pytest.mark.parametrize("name", augment.ORDER)
def test_each_augmentation_does_something_when_always_on(name: str, monkeypatch) -> None:
    entry = augment.AUGMENTATIONS[name]
    monkeypatch.setitem(
        augment.AUGMENTATIONS, name, augment.Augmentation(name, 1.0, entry.geometric, "")
    )
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    masks = np.zeros((4, 32, 32, 1), np.float32)
    masks[:, 4:20, 2:12] = 1
    out_images, out_labels = _run(images, masks, [5, 6], {name})
    assert not np.allclose(out_images, images)
    if entry.geometric:
        assert not np.array_equal(out_labels, masks)
    else:
        np.testing.assert_array_equal(out_labels, masks)


def test_switching_one_augmentation_off_leaves_the_others_unchanged() -> None:
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (6, 24, 24, 3)).astype(np.float32)
    masks = (rng.uniform(size=(6, 24, 24, 1)) > 0.5).astype(np.float32)
    flips = _run(images, masks, [9, 9], {"flip-h"})
    flips_and_add = _run(images, masks, [9, 9], {"flip-h", "add"})
    np.testing.assert_array_equal(flips[1], flips_and_add[1])


def test_median_blur_matches_numpy_median() -> None:
    tf = tfcompat.tf()
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (2, 9, 11, 3)).astype(np.float32)
    got = augment._median_blur(tf.constant(x)).numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    np.testing.assert_allclose(got, np.median(windows, axis=(-2, -1)), rtol=0, atol=1e-4)


def test_parse() -> None:
    assert augment.parse(None) == frozenset(augment.ORDER)
    assert augment.parse("all") == frozenset(augment.ORDER)
    assert augment.parse("none") == frozenset()
    assert augment.parse("flip-h, gamma") == {"flip-h", "gamma"}
    assert augment.parse("flip-h", disabled=True) == frozenset()
    with pytest.raises(UsageError, match="unknown augmentation"):
        augment.parse("flip-h,sharpen")
