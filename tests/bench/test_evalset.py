"""Real-image eval sets: photos of any size, binary or class-index masks, stretch/letterbox."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from harness.bench.compare import vs_gt
from harness.errors import ExitCode, UsageError
from harness.evalset import IGNORE, Resize, load_eval_folder


def _folder(tmp_path: Path, masks: dict[str, np.ndarray], palette: bool = False) -> Path:
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(1)
    for stem, mask in masks.items():
        h, w = mask.shape
        photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "images" / f"{stem}.jpg"), photo)
        im = Image.fromarray(mask, mode="L")
        if palette:  # VOC: an indexed PNG whose pixel values are class indices
            im = im.convert("P")
            im.putpalette([v for i in range(256) for v in (i, (i * 7) % 256, (i * 13) % 256)])
        im.save(tmp_path / "masks" / f"{stem}.png")
    return tmp_path


def _voc(h: int, w: int) -> np.ndarray:
    """Class 15 (person) on the left half, class 3 on the right, a 2-pixel 255 border."""
    mask = np.full((h, w), 3, np.uint8)
    mask[:, : w // 2] = 15
    mask[:2, :] = mask[-2:, :] = IGNORE
    return mask


def test_class_index_masks_with_ignore(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"a": _voc(20, 20), "b": _voc(20, 20)}, palette=True)
    loaded = load_eval_folder(folder, 20, 20, mask_class=15)
    m = loaded.masks[0]
    assert set(np.unique(m)) == {0, 1, IGNORE}
    assert (m[2:-2, :10] == 1).all() and (m[2:-2, 10:] == 0).all() and (m[:2] == IGNORE).all()
    with pytest.raises(UsageError, match="no mask in .* has that class") as err:
        load_eval_folder(folder, 20, 20, mask_class=7)
    assert "\n" not in str(err.value) and err.value.exit_code == ExitCode.USAGE
    # without --mask-class any non-zero value is foreground
    assert (load_eval_folder(folder, 20, 20).masks[0] == 1).all()


def test_binary_masks_0_1_and_0_255_read_alike(tmp_path: Path) -> None:
    mask = np.zeros((12, 16), np.uint8)
    mask[3:9, 4:12] = 1
    one = load_eval_folder(_folder(tmp_path / "one", {"x": mask}), 12, 16)
    full = load_eval_folder(_folder(tmp_path / "full", {"x": mask * 255}), 12, 16)
    assert np.array_equal(one.masks, full.masks) and one.masks.sum() == 48


def test_letterbox_pads_with_ignore_and_stretch_does_not(tmp_path: Path) -> None:
    mask = np.ones((20, 40), np.uint8)  # landscape photo, square model input
    folder = _folder(tmp_path, {"wide": mask})
    box = load_eval_folder(folder, 16, 16, resize=Resize.LETTERBOX)
    assert box.images.shape == (1, 16, 16, 3) and box.resize is Resize.LETTERBOX
    assert (box.masks[0, :4] == IGNORE).all() and (box.masks[0, 4:12] == 1).all()
    assert (box.images[0, :4] == 0).all()
    stretch = load_eval_folder(folder, 16, 16)
    assert (stretch.masks == 1).all()


def test_ignored_pixels_are_not_scored() -> None:
    gt = np.zeros((1, 4, 4), np.uint8)
    gt[0, :2] = 1
    gt[0, 2:] = IGNORE
    device = np.ones((1, 4, 4), np.uint8)  # wrong only where the truth is "ignore"
    result = vs_gt(device, gt)
    assert result["iou"] == 1.0 and result["pixel_acc"] == 1.0 and result["ignored_pixels"] == 8


def test_bad_folders_are_one_line_errors(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"a": np.ones((10, 10), np.uint8)})
    Image.fromarray(np.ones((5, 5), np.uint8)).save(folder / "masks" / "a.png")
    with pytest.raises(UsageError, match="size mismatch"):
        load_eval_folder(folder, 8, 8)
    with pytest.raises(UsageError, match="expected stretch or letterbox"):
        Resize.parse("crop")
    with pytest.raises(UsageError, match="has no images/"):
        load_eval_folder(tmp_path / "nowhere", 8, 8)


def test_full_resolution_iou_undoes_the_letterbox(tmp_path: Path) -> None:
    from harness.evalset import full_resolution_iou

    truth = np.zeros((20, 40), np.uint8)
    truth[:, :20] = 1  # left half of a landscape photo
    folder = load_eval_folder(_folder(tmp_path, {"w": truth}), 16, 16, resize=Resize.LETTERBOX)
    perfect = (folder.masks == 1).astype(np.uint8)  # the fitted truth, padding as background
    assert full_resolution_iou(perfect, folder) == 1.0
    padding_only = (folder.masks == IGNORE).astype(np.uint8)  # right only where nothing counts
    assert full_resolution_iou(padding_only, folder) == 0.0
    half = np.zeros((1, 8, 8), np.uint8)  # a half-resolution output: the box is scaled
    half[0, 2:6, :4] = 1
    assert full_resolution_iou(half, folder) == 1.0
