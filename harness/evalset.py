"""Real-image eval sets: a folder of photos of any size with person masks, at a model's input.

``DIR/images/*.{jpg,png,...}`` + ``DIR/masks/*.png`` paired by file stem (each mask the size of
its photo). Masks are read as one plane of values (palette PNGs keep their class indices):

- binary (default): 0/255 or 0/1; any non-zero pixel is foreground;
- class-index (``mask_class=N``, VOC style): pixels equal to N are foreground, 255 is *ignore*
  (not scored), every other value is background. A class that no mask of the folder holds is
  an error (exit 2): a wrong ``--mask-class`` would score every image as empty.

Resize policy, recorded with the set: ``stretch`` (photo and mask resized to H x W, aspect
ratio not kept) or ``letterbox`` (aspect kept, padded with black; the padding is *ignore*).
Returned masks are uint8 ``{0, 1, IGNORE}``; :func:`harness.bench.compare.vs_gt` leaves
``IGNORE`` pixels out. Pure apart from reading the files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from harness.errors import UsageError

__all__ = ["IGNORE", "EvalFolder", "Resize", "full_resolution_iou", "load_eval_folder"]

IGNORE = 255
_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class Resize(StrEnum):
    STRETCH = "stretch"
    LETTERBOX = "letterbox"

    @classmethod
    def parse(cls, text: str | None) -> Resize:
        try:
            return cls((text or "stretch").strip().lower())
        except ValueError:
            raise UsageError(f"--resize {text!r}: expected stretch or letterbox") from None


@dataclass(frozen=True, eq=False)
class EvalFolder:
    images: np.ndarray  # uint8 [N, H, W, 3] RGB
    masks: np.ndarray  # uint8 [N, H, W] in {0, 1, IGNORE}
    stems: tuple[str, ...]
    resize: Resize
    mask_class: int | None
    originals: tuple[np.ndarray, ...] = ()  # labels {0, 1, IGNORE} at each photo's own size
    boxes: tuple[tuple[int, int, int, int], ...] = ()  # (top, left, h, w) of the photo in H x W

    def describe(self) -> dict[str, object]:
        return {
            "resize": str(self.resize),
            "mask_class": self.mask_class,
            "stems": list(self.stems),
        }


def _pairs(root: Path) -> list[tuple[str, Path, Path]]:
    folders = {name: root / name for name in ("images", "masks")}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise UsageError(f"{root} has no {name}/ folder (images/ and masks/ paired by stem)")
    listing = {
        name: {p.stem: p for p in sorted(f.iterdir()) if p.suffix.lower() in _SUFFIXES}
        for name, f in folders.items()
    }
    images, masks = listing["images"], listing["masks"]
    if not images:
        raise UsageError(f"{folders['images']} has no image files")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise UsageError(f"no mask in {folders['masks']} for {', '.join(missing[:5])}")
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def _read_image(path: Path) -> np.ndarray:
    import cv2

    array = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if array is None:
        raise UsageError(f"cannot decode {path} as an image")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path) -> np.ndarray:
    """One plane of values; a palette PNG gives its indices (VOC), a colour mask its max."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            array = np.asarray(im if im.mode in ("P", "L", "1", "I;16", "I") else im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot decode {path} as a mask") from exc
    if array.ndim == 3:
        array = array.max(axis=2)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)


def _labels(plane: np.ndarray, mask_class: int | None) -> np.ndarray:
    if mask_class is None:
        return (plane > 0).astype(np.uint8)
    out = (plane == mask_class).astype(np.uint8)
    out[plane == IGNORE] = IGNORE
    return out


def _fit(image: np.ndarray, labels: np.ndarray, h: int, w: int, resize: Resize):  # type: ignore[no-untyped-def]
    import cv2

    ih, iw = image.shape[:2]
    if resize is Resize.STRETCH:
        inter = cv2.INTER_AREA if ih > h or iw > w else cv2.INTER_LINEAR
        return (
            cv2.resize(image, (w, h), interpolation=inter),
            cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST),
            (0, 0, h, w),
        )
    scale = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * scale)), max(1, round(iw * scale))
    inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    top, left = (h - nh) // 2, (w - nw) // 2
    out_image = np.zeros((h, w, 3), np.uint8)
    out_labels = np.full((h, w), IGNORE, np.uint8)
    out_image[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=inter)
    out_labels[top : top + nh, left : left + nw] = cv2.resize(
        labels, (nw, nh), interpolation=cv2.INTER_NEAREST
    )
    return out_image, out_labels, (top, left, nh, nw)


def load_eval_folder(
    folder: Path,
    height: int,
    width: int,
    *,
    mask_class: int | None = None,
    resize: Resize = Resize.STRETCH,
    limit: int | None = None,
) -> EvalFolder:
    """The first ``limit`` photos of ``folder`` (by stem) at ``height`` x ``width``."""
    if mask_class is not None and not 0 <= mask_class < IGNORE:
        raise UsageError(f"--mask-class {mask_class}: expected 0..254 (255 means ignore)")
    pairs = _pairs(Path(folder))[:limit]
    images, masks, originals, boxes, seen = [], [], [], [], set()
    for _stem, image_path, mask_path in pairs:
        image, plane = _read_image(image_path), _read_mask(mask_path)
        if plane.shape != image.shape[:2]:
            raise UsageError(
                f"size mismatch: {image_path.name} is {image.shape[1]}x{image.shape[0]} but its "
                f"mask is {plane.shape[1]}x{plane.shape[0]}"
            )
        seen.update(int(v) for v in np.unique(plane))
        full = _labels(plane, mask_class)
        image, labels, box = _fit(image, full, height, width, resize)
        images.append(image)
        masks.append(labels)
        originals.append(full)
        boxes.append(box)
    if mask_class is not None and mask_class not in seen:
        present = ", ".join(str(v) for v in sorted(seen)[:12])
        raise UsageError(
            f"--mask-class {mask_class}: no mask in {folder} has that class (values present: "
            f"{present})"
        )
    stems = tuple(p[0] for p in pairs)
    return EvalFolder(
        np.stack(images), np.stack(masks), stems, resize, mask_class, tuple(originals), tuple(boxes)
    )


def full_resolution_iou(masks: np.ndarray, folder: EvalFolder) -> float:
    """Mean IoU of model-resolution masks ``[N, H, W]`` taken back to each photo's own size
    (the photo's box cut out of a letterbox, nearest-neighbour upsampling), ignore left out."""
    import cv2

    ih, iw = folder.images.shape[1:3]
    ious = []
    for mask, truth, (top, left, h, w) in zip(masks, folder.originals, folder.boxes, strict=True):
        sy, sx = mask.shape[0] / ih, mask.shape[1] / iw  # an output smaller than the input
        top, h, left, w = round(top * sy), round(h * sy), round(left * sx), round(w * sx)
        box = np.ascontiguousarray(mask[top : top + h, left : left + w], np.uint8)
        full = cv2.resize(box, truth.shape[::-1], interpolation=cv2.INTER_NEAREST) != 0
        valid = truth != IGNORE
        pred, true = full[valid], truth[valid] == 1
        union = np.count_nonzero(pred | true)
        ious.append(1.0 if union == 0 else np.count_nonzero(pred & true) / union)
    return float(np.mean(ious))


def stem_keys(stems: tuple[str, ...]) -> list[tuple[int, int]]:
    """Per-stem seeds for the 4-channel prior masks (the trainer's rule)."""
    out = []
    for stem in stems:
        digest = hashlib.sha256(stem.encode()).digest()
        out.append((int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")))
    return out
