"""Dataset layouts: one small generated fixture per layout, detection, pairing errors."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.errors import UsageError
from harness.train import data, layouts

SIZE = (40, 30)  # width, height of every generated file


def _image(stem: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    return rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def _alpha(stem: str) -> np.ndarray:
    """A soft ellipse matte: 255 inside, a ramp at the edge, 0 outside."""
    alpha = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    cv2.ellipse(alpha, (SIZE[0] // 2, SIZE[1] // 2), (10, 8), 0, 0, 360, 255, -1)
    return cv2.GaussianBlur(alpha, (5, 5), 0)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_eg1800(root: Path, train=("00001", "00002", "00003"), test=("00004",)) -> Path:
    for stem in (*train, *test):
        _write(root / "Images" / f"{stem}.png", _image(stem))
        _write(root / "Labels" / f"{stem}.png", (_alpha(stem) >= 128).astype(np.uint8))  # 0/1
    _write(root / "Images" / "99999.png", _image("unlisted"))  # in no list: not used
    _write(root / "Labels" / "99999.png", np.zeros((SIZE[1], SIZE[0]), np.uint8))
    (root / "eg1800_train.txt").write_text("".join(f"{s}.png\n" for s in train))
    (root / "eg1800_test.txt").write_text("".join(f"{s}.png\n" for s in test))
    return root


def make_pfcn(root: Path, split: bool = True) -> Path:
    folders = {"training": ("00001", "00002", "00003"), "testing": ("00004",)}
    if not split:
        folders = {".": ("00001", "00002", "00003", "00004")}
    for folder, stems in folders.items():
        for stem in stems:
            _write(root / folder / f"{stem}.png", _image(stem))
            _write(root / folder / f"{stem}_matte.png", _alpha(stem))
    return root


def make_alpha(root: Path, rgba: bool = False) -> Path:
    for stem in ("a", "b", "c"):
        _write(root / "images" / f"{stem}.jpg", _image(stem))
        alpha = _alpha(stem)
        if rgba:  # a cut-out: colour plus the matte in the alpha channel
            alpha = np.dstack([_image(stem), alpha])
        _write(root / "alpha" / f"{stem}.png", alpha)
    return root


def make_folders(root: Path) -> Path:
    for stem in ("a", "b", "c"):
        _write(root / "images" / f"{stem}.png", _image(stem))
        _write(root / "masks" / f"{stem}.png", (_alpha(stem) >= 128).astype(np.uint8) * 255)
    return root


def test_eg1800_uses_the_lists_and_keeps_the_test_split(tmp_path: Path) -> None:
    root = make_eg1800(tmp_path / "EG1800")
    assert layouts.list_samples(root).layout == "eg1800"
    ds = data.folder_dataset(root, 32)
    assert ds.names == ("00001", "00002", "00003", "00004")  # 99999 is in no list
    assert ds.layout == "eg1800" and ds.alphas is None
    assert ds.masks.max() == 1 and ds.masks.sum() > 0  # 0/1 labels read as foreground
    train, val = data.split(ds, 0.5, seed=0)  # the list's split, not --val-ratio's
    assert val.names == ("00004",) and train.names == ("00001", "00002", "00003")
    assert ds.split_from == "eg1800_test.txt"


@pytest.mark.parametrize("split", [True, False])
def test_pfcn_pairs_images_with_mattes(tmp_path: Path, split: bool) -> None:
    root = make_pfcn(tmp_path / "pfcn", split=split)
    ds = data.folder_dataset(root, 32)
    assert ds.layout == "pfcn" and len(ds) == 4 and ds.alphas is not None
    assert ds.alphas.min() == 0 and ds.alphas.max() == 255
    assert np.any((ds.alphas > 0) & (ds.alphas < 255))  # a soft matte, kept soft
    np.testing.assert_array_equal(ds.masks, (ds.alphas >= 128).astype(np.uint8))
    _, val = data.split(ds, 0.25, seed=0)
    if split:
        assert ds.names[-1] == "testing/00004" and val.names == ("testing/00004",)
    else:
        assert ds.val_names is None and len(val) == 1


@pytest.mark.parametrize("rgba", [False, True])
def test_alpha_layout_reads_grey_or_rgba_mattes(tmp_path: Path, rgba: bool) -> None:
    root = make_alpha(tmp_path / "alpha", rgba=rgba)
    ds = data.folder_dataset(root, 32)
    assert ds.layout == "alpha" and ds.names == ("a", "b", "c")
    expected = cv2.resize(_alpha("a"), (32, 32), interpolation=cv2.INTER_AREA)  # 40 px shrink
    np.testing.assert_array_equal(ds.alphas[0], expected)
    np.testing.assert_array_equal(ds.masks, (ds.alphas >= 128).astype(np.uint8))


def test_folders_layout_is_still_detected(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "plain")
    ds = data.folder_dataset(root, 32)
    assert ds.layout == "folders" and ds.alphas is None and ds.val_names is None


def test_layout_can_be_forced(tmp_path: Path) -> None:
    root = make_pfcn(tmp_path / "pfcn")
    with pytest.raises(UsageError, match="has no Images/ folder"):
        data.folder_dataset(root, 32, layout="eg1800")
    with pytest.raises(UsageError, match="unknown --layout 'coco'; choose one of: folders"):
        data.folder_dataset(root, 32, layout="coco")


def _break(root: Path, how: str) -> None:
    if how == "eg1800-missing-label":
        (root / "Labels" / "00002.png").unlink()
    elif how == "eg1800-listed-missing":
        (root / "Images" / "00003.png").unlink()
    elif how == "eg1800-in-both":
        (root / "eg1800_test.txt").write_text("00004.png\n00001.png\n")
    elif how == "eg1800-no-list":
        (root / "eg1800_train.txt").unlink()
    elif how == "pfcn-missing-matte":
        (root / "training" / "00002_matte.png").unlink()
    elif how == "pfcn-orphan-matte":
        (root / "training" / "00002.png").unlink()
    elif how == "pfcn-size-mismatch":
        _write(root / "training" / "00001_matte.png", np.zeros((10, 10), np.uint8))
    elif how == "alpha-missing":
        (root / "alpha" / "b.png").unlink()
    elif how == "alpha-undecodable":
        (root / "alpha" / "c.png").write_bytes(b"not a png")


@pytest.mark.parametrize(
    ("make", "how", "message"),
    [
        (make_eg1800, "eg1800-missing-label", r"missing label in .*Labels for 1 image\(s\): 00002"),
        (make_eg1800, "eg1800-listed-missing", r"eg1800_train.txt lists 1 image\(s\) missing"),
        (make_eg1800, "eg1800-in-both", r"in both eg1800_train.txt and eg1800_test.txt: 00001"),
        (make_eg1800, "eg1800-no-list", "has no train list"),
        (make_pfcn, "pfcn-missing-matte", r"missing _matte file in .*training for 1 image"),
        (make_pfcn, "pfcn-orphan-matte", r"1 _matte file\(s\) without an image"),
        (make_pfcn, "pfcn-size-mismatch", "size mismatch: 00001.png is 40x30 but its matte is"),
        (make_alpha, "alpha-missing", r"missing alpha matte in .*alpha for 1 image\(s\): b"),
        (make_alpha, "alpha-undecodable", "cannot decode .*c.png"),
    ],
)
def test_pairing_errors_are_one_line(tmp_path: Path, make, how: str, message: str) -> None:
    root = make(tmp_path / "d")
    _break(root, how)
    with pytest.raises(UsageError, match=message) as info:
        data.folder_dataset(root, 32)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_unknown_layout_folder_names_the_layouts(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match="matches no dataset layout \\(folders, eg1800"):
        data.folder_dataset(tmp_path / "stuff", 32)


def test_folders_fingerprint_is_unchanged_by_the_layout_registry(tmp_path: Path) -> None:
    """Runs trained before layouts existed must still resume: the folder fingerprint is the
    same sha256 over (kind/file name:size:bytes) in stem order."""
    import hashlib

    root = make_folders(tmp_path / "plain")
    digest = hashlib.sha256()
    for stem in ("a", "b", "c"):
        for kind, sub in (("image", "images"), ("mask", "masks")):
            raw = (root / sub / f"{stem}.png").read_bytes()
            digest.update(f"{kind}/{stem}.png:{len(raw)}:".encode())
            digest.update(raw)
    assert data.folder_dataset(root, 32).fingerprint == "sha256:" + digest.hexdigest()


def test_cache_skips_decoding_while_the_files_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    root = make_pfcn(tmp_path / "pfcn")
    cache = tmp_path / "cache"
    first = data.folder_dataset(root, 32, cache=cache)
    assert [p.name for p in cache.iterdir()] == [
        f"pfcn-{first.fingerprint.removeprefix('sha256:')[:16]}-32px-3ch.npz"
    ]

    def no_decoding(*_args):
        raise AssertionError("decoded although the cache holds this dataset")

    with monkeypatch.context() as m:
        m.setattr(data, "_read_sample", no_decoding)
        again = data.folder_dataset(root, 32, cache=cache)
    assert again.fingerprint == first.fingerprint and again.names == first.names
    assert again.val_names == first.val_names and again.layout == "pfcn"
    for a, b in ((again.images, first.images), (again.masks, first.masks)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.alphas, first.alphas)
    # A changed file changes the fingerprint: decoded again, into a second cache file.
    _write(root / "training" / "00001_matte.png", np.zeros((SIZE[1], SIZE[0]), np.uint8))
    changed = data.folder_dataset(root, 32, cache=cache)
    assert changed.fingerprint != first.fingerprint and changed.alphas[0].max() == 0
    assert len(list(cache.iterdir())) == 2
