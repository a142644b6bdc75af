"""Dataset layouts: how a folder pairs images with their masks or alpha mattes.

Listing only: these functions read directory entries and list files, never pixels
(:mod:`harness.train.data` decodes). Each layout is a registry entry with a ``detect`` test
and a ``list`` function that returns a :class:`Listing` or raises a one-line
:class:`~harness.errors.UsageError` naming what does not pair. ``--layout NAME`` skips
detection. The conventions are documented in docs/train.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MATTE_SUFFIX = "_matte"  # PFCN+ style: 00001.png + 00001_matte.png


@dataclass(frozen=True)
class Sample:
    """One training sample's files. A sample without a mask file takes its mask from the
    matte (alpha >= 128)."""

    name: str  # unique in the dataset: the split and the fingerprint use it
    image: Path
    mask: Path | None
    matte: Path | None


@dataclass(frozen=True)
class Listing:
    layout: str
    samples: tuple[Sample, ...]
    val_names: frozenset[str] | None = None  # a validation split the dataset defines
    split_from: str | None = None  # where that split comes from (a list file or folder)


@dataclass(frozen=True)
class Layout:
    name: str
    summary: str
    detect: Callable[[Path], bool]
    list: Callable[[Path], Listing]


def few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def listing(folder: Path, *, exclude_suffix: str | None = None) -> dict[str, Path]:
    """Image files of a folder by stem; two files with one stem are an error."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if exclude_suffix and path.stem.endswith(exclude_suffix):
            continue
        if path.stem in files:
            raise UsageError(
                f"{folder} has two files for one sample: {files[path.stem].name} and {path.name}"
            )
        files[path.stem] = path
    return files


def _pair(images: dict[str, Path], labels: dict[str, Path], image_dir: Path, label_dir: Path,
          kind: str) -> None:  # fmt: skip
    """Every image has a label and every label an image, else a one-line error."""
    if not images:
        raise UsageError(f"{image_dir} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    missing = sorted(set(images) - set(labels))
    if missing:
        raise UsageError(
            f"missing {kind} in {label_dir} for {len(missing)} image(s): {few(missing)}"
        )
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise UsageError(
            f"{len(orphans)} {kind}(s) without an image in {image_dir}: {few(orphans)}"
        )


def _need_dirs(root: Path, names: Sequence[str], expected: str) -> list[Path]:
    for name in names:
        if not (root / name).is_dir():
            raise UsageError(f"{root} has no {name}/ folder (expected {expected})")
    return [root / name for name in names]


# --------------------------------------------------------------------------- folders


def _list_folders(root: Path) -> Listing:
    image_dir, mask_dir = _need_dirs(
        root, ("images", "masks"), "images/ and masks/ paired by file stem"
    )
    images, masks = listing(image_dir), listing(mask_dir)
    _pair(images, masks, image_dir, mask_dir, "mask")
    mattes: dict[str, Path] = {}
    if (root / "mattes").is_dir():
        mattes = listing(root / "mattes")
        lacking = sorted(set(images) - set(mattes))
        if lacking:
            raise UsageError(
                f"missing matte in {root / 'mattes'} for {len(lacking)} image(s): {few(lacking)}"
            )
    samples = tuple(Sample(s, images[s], masks[s], mattes.get(s)) for s in sorted(images))
    return Listing("folders", samples)


# --------------------------------------------------------------------------- alpha


def _alpha_dir(root: Path) -> Path | None:
    return next((root / n for n in ("alpha", "alphas") if (root / n).is_dir()), None)


def _list_alpha(root: Path) -> Listing:
    (image_dir,) = _need_dirs(root, ("images",), "images/ and alpha/ paired by file stem")
    alpha_dir = _alpha_dir(root)
    if alpha_dir is None:
        raise UsageError(f"{root} has no alpha/ folder (expected images/ and alpha/ mattes)")
    images, alphas = listing(image_dir), listing(alpha_dir)
    _pair(images, alphas, image_dir, alpha_dir, "alpha matte")
    return Listing("alpha", tuple(Sample(s, images[s], None, alphas[s]) for s in sorted(images)))


# --------------------------------------------------------------------------- eg1800


def _list_file(root: Path, word: str) -> Path | None:
    found = sorted(p for p in root.glob(f"*{word}*.txt") if p.is_file())
    if len(found) > 1:
        raise UsageError(f"{root} has several {word} lists: {few([p.name for p in found])}")
    return found[0] if found else None


def _read_names(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    return [Path(line.strip()).name for line in lines if line.strip()]


def _list_eg1800(root: Path) -> Listing:
    image_dir, label_dir = _need_dirs(
        root, ("Images", "Labels"), "Images/ and Labels/ with eg1800_train.txt / eg1800_test.txt"
    )
    train_list, test_list = _list_file(root, "train"), _list_file(root, "test")
    if train_list is None:
        raise UsageError(f"{root} has no train list (e.g. eg1800_train.txt: one file name a line)")
    images, labels = listing(image_dir), listing(label_dir)
    lists = {train_list: [Path(n).stem for n in _read_names(train_list)]}
    if test_list is not None:
        lists[test_list] = [Path(n).stem for n in _read_names(test_list)]
    listed: dict[str, str] = {}
    for path, stems in lists.items():
        if not stems:
            raise UsageError(f"{path} lists no images")
        absent = sorted(set(stems) - set(images))
        if absent:
            raise UsageError(
                f"{path.name} lists {len(absent)} image(s) missing in {image_dir}: {few(absent)}"
            )
        twice = sorted(s for s in set(stems) if s in listed)
        if twice:
            raise UsageError(
                f"{len(twice)} image(s) are in both {listed[twice[0]]} and {path.name}: {few(twice)}"
            )
        listed.update((s, path.name) for s in stems)
    chosen = {s: images[s] for s in listed}
    _pair(chosen, {s: p for s, p in labels.items() if s in chosen}, image_dir, label_dir, "label")
    samples = tuple(Sample(s, chosen[s], labels[s], None) for s in sorted(chosen))
    if test_list is None:
        return Listing("eg1800", samples)
    val = frozenset(s for s, source in listed.items() if source == test_list.name)
    return Listing("eg1800", samples, val, test_list.name)


# --------------------------------------------------------------------------- pfcn


def _pfcn_dirs(root: Path) -> list[Path]:
    split = [root / n for n in ("training", "testing") if (root / n).is_dir()]
    return split or [root]


def _has_mattes(folder: Path) -> bool:
    return folder.is_dir() and any(
        p.stem.endswith(MATTE_SUFFIX) and p.suffix.lower() in IMAGE_SUFFIXES
        for p in folder.iterdir()
    )


def _list_pfcn(root: Path) -> Listing:
    folders = _pfcn_dirs(root)
    samples: list[Sample] = []
    for folder in folders:
        images = listing(folder, exclude_suffix=MATTE_SUFFIX)
        mattes = {
            stem.removesuffix(MATTE_SUFFIX): path
            for stem, path in listing(folder).items()
            if stem.endswith(MATTE_SUFFIX)
        }
        _pair(images, mattes, folder, folder, f"{MATTE_SUFFIX} file")
        prefix = "" if folder == root else f"{folder.name}/"
        samples += [Sample(prefix + s, images[s], None, mattes[s]) for s in sorted(images)]
    if root / "testing" in folders and root / "training" in folders:
        val = frozenset(s.name for s in samples if s.name.startswith("testing/"))
        return Listing("pfcn", tuple(samples), val, "testing/")
    return Listing("pfcn", tuple(samples))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "folders",
            "images/ + masks/ paired by file stem, optional mattes/",
            lambda r: (r / "images").is_dir() and (r / "masks").is_dir(),
            _list_folders,
        ),
        Layout(
            "eg1800",
            "EG1800 (PortraitNet): Images/ + Labels/ with eg1800_train.txt / eg1800_test.txt",
            lambda r: (r / "Images").is_dir() and (r / "Labels").is_dir(),
            _list_eg1800,
        ),
        Layout(
            "alpha",
            "images/ + alpha/ grey alpha-matte PNGs (mask = alpha >= 128; matting loss)",
            lambda r: (r / "images").is_dir() and _alpha_dir(r) is not None,
            _list_alpha,
        ),
        Layout(
            "pfcn",
            "PFCN+ / portrait matting: NAME.png + NAME_matte.png, optional training/ + testing/",
            lambda r: any(_has_mattes(d) for d in _pfcn_dirs(r)),
            _list_pfcn,
        ),
    )
}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise UsageError(
            f"unknown --layout {name!r}; choose one of: {', '.join(LAYOUTS)}"
        ) from None


def list_samples(root: Path, layout: str | None = None) -> Listing:
    """The samples of the dataset in ``root``, in the given or the detected layout."""
    if not root.is_dir():
        raise UsageError(f"data folder not found: {root}")
    if layout is not None:
        return get_layout(layout).list(root)
    for entry in LAYOUTS.values():
        if entry.detect(root):
            return entry.list(root)
    if (root / "images").is_dir():  # the usual layout, half there: say what is missing
        return LAYOUTS["folders"].list(root)
    raise UsageError(
        f"{root} matches no dataset layout ({', '.join(LAYOUTS)}; see docs/train.md), "
        "e.g. images/ + masks/ paired by file stem"
    )
