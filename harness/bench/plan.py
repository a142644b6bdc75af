"""Resolve what a bench run measures: variants, delegates, eval set, desktop references."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.convert.iospec import IoOptions, IoSpec, Prior, resolve_io
from harness.convert.specs import InputSpec, OutputSpec
from harness.errors import ModelError, UsageError
from harness.runner import Delegate, parse_delegate

DEFAULT_DELEGATES = ("cpu", "gpu", "gpu-fp32")
EVAL_SEED = 20261124  # the synthetic eval set is fixed: same images on every run


@dataclass(frozen=True)
class Target:
    """One variant to benchmark."""

    variant_id: str
    sha256: str
    path: Path
    input: InputSpec
    output: OutputSpec
    output_sizes: tuple[int, ...]  # bytes per sample of every output tensor, in order
    model: str
    spec: dict = field(compare=False, repr=False)  # what the store keeps
    io: IoSpec | None = field(default=None, compare=False, repr=False)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.io.warnings if self.io is not None else ()

    def config_entry(self) -> dict:
        """What a run's config records of this target."""
        io = self.io.to_dict() if self.io is not None else None
        return {"id": self.variant_id, "sha256": self.sha256, "file": str(self.path), "io": io}

    @property
    def output_offset(self) -> int:
        """Byte offset of the decoded output inside one sample's --output_filepath bytes."""
        index = max(self.output.index, 0)
        order = self.spec.get("_output_order", [])
        position = order.index(index) if index in order else 0
        return sum(self.output_sizes[:position])

    @property
    def sample_bytes(self) -> int:
        return sum(self.output_sizes)


def _tensor_bytes(shape, dtype: str) -> int:
    return int(np.prod([max(int(d), 1) for d in shape])) * np.dtype(dtype).itemsize


def _file_sha(path: Path) -> str:
    from harness.devices.cache import sha256_file

    return sha256_file(path)


def resolve_targets(
    model: str, variants: str | None = None, io: IoOptions | None = None
) -> tuple[str, list[Target]]:
    """``models/NAME`` (its variants.json) or one ``.tflite`` (spec inferred or from a manifest).

    Every target's I/O spec goes through :func:`harness.convert.iospec.resolve_io` with ``io``.
    """
    from harness.convert.inspection import inspect_tflite
    from harness.convert.tflite_model import read_tflite
    from harness.convert.variants import MANIFEST_NAME, read_manifest

    path = Path(model)
    patterns = [p.strip() for p in (variants or "*").split(",") if p.strip()]
    targets: list[Target] = []
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise ModelError(f"{path} has no {MANIFEST_NAME}: run harness convert {path} first")
        manifest = read_manifest(path)
        for record in manifest.variants:
            if not any(fnmatch.fnmatchcase(record.id, p) for p in patterns):
                continue
            file = path / record.file
            if not file.is_file():
                raise ModelError(f"{file} is listed in {MANIFEST_NAME} but missing")
            if _file_sha(file) != record.sha256:
                raise ModelError(f"{file} changed since conversion (sha256 differs): reconvert")
            tm = read_tflite(file)
            resolved = resolve_io(tm, record, io, where=str(file))
            spec = record.to_dict()
            spec.update(
                input=resolved.input.to_dict(),
                output=resolved.output.to_dict(),
                io=resolved.to_dict(),
            )
            spec["_output_order"] = [t.index for t in tm.outputs]
            targets.append(
                Target(
                    record.id,
                    record.sha256,
                    file,
                    resolved.input,
                    resolved.output,
                    tuple(_tensor_bytes(t.shape, t.dtype) for t in tm.outputs),
                    manifest.model,
                    spec,
                    resolved,
                )
            )
        name = manifest.model
        if not targets:
            known = ", ".join(r.id for r in manifest.variants) or "none"
            raise UsageError(
                f"--variants {variants!r} matches no variant of {path}; known: {known}"
            )
    elif path.is_file():
        insp = inspect_tflite(path, io)
        spec = insp.to_dict()
        spec["_output_order"] = [t.index for t in insp.model.outputs]
        variant_id = insp.variant_id or path.stem
        targets.append(
            Target(
                variant_id,
                insp.model.sha256,
                path,
                insp.input,
                insp.output,
                tuple(_tensor_bytes(t.shape, t.dtype) for t in insp.model.outputs),
                path.stem,
                spec,
                insp.io,
            )
        )
        name = path.stem
    else:
        raise UsageError(f"--model {model}: no such model folder or .tflite file")
    return name, targets


def resolve_delegates(text: str | None) -> list[Delegate]:
    """``None``: the defaults; an empty list (``''`` as well as ``',,,'``) is an error."""
    chosen = ",".join(DEFAULT_DELEGATES) if text is None else text
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--delegates {text!r} names no delegate")
    return list(dict.fromkeys(parse_delegate(n) for n in names))


def eval_images(
    source: str, n: int, target: Target, io: IoOptions | None = None
) -> tuple[str, np.ndarray, np.ndarray | None]:
    """(name, images uint8 [N,H,W,C], masks or None) at the target's input size.

    A folder is read by :func:`harness.evalset.load_eval_folder` (photos of any size; binary
    or ``--mask-class`` masks, 255 = ignore; ``--resize stretch|letterbox``).
    """
    if n < 1:
        raise UsageError("--images must be at least 1")
    io = io or IoOptions()
    h, w, c = target.input.height, target.input.width, target.input.channels
    if c not in (1, 3, 4):
        raise UsageError(f"{target.variant_id}: {c}-channel input is not an image")
    from harness.bench.checks import eval_memory

    eval_memory(n, h, w, c)  # before any image is made or read (no MemoryError later)
    if source == "synthetic":
        from harness.train.data import synthetic_portraits

        images, masks = synthetic_portraits(n, max(h, w), EVAL_SEED, channels=4 if c == 4 else 3)
        name = f"synthetic-{n}x{max(h, w)}-seed{EVAL_SEED}"
        if (h, w) != images.shape[1:3]:
            import cv2

            images = np.stack(
                [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
            )
            masks = np.stack(
                [cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in masks]
            )
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise UsageError(f"--eval-set {source}: not a folder (or 'synthetic')")
        from harness.evalset import Resize, load_eval_folder, stem_keys

        loaded = load_eval_folder(
            folder, h, w, mask_class=io.mask_class, resize=Resize.parse(io.resize), limit=n
        )
        images, masks = loaded.images, loaded.masks
        if c == 4:
            from harness.train.synthetic import prior_masks

            prior = prior_masks((masks == 1).astype(np.uint8), stem_keys(loaded.stems))
            images = np.concatenate([images, prior[..., None]], axis=-1)
        name = f"{folder.name}-{len(images)}x{h}x{w}-{loaded.resize}"
        if loaded.mask_class is not None:
            name += f"-class{loaded.mask_class}"
    if c == 1:
        images = images[..., :1]
    prior_kind = target.io.prior if target.io is not None else None
    if c == 4 and prior_kind is not None and prior_kind is not Prior.GT:
        images = fill_prior(images, prior_kind, target)
        name = f"{name}-prior-{prior_kind}"
    return name, np.ascontiguousarray(images), np.ascontiguousarray(masks)


def full_resolution(source: str, n: int, target: Target, io: IoOptions):  # type: ignore[no-untyped-def]
    """The eval folder with each photo's own-size mask, when ``--full-res-iou`` asks for it."""
    if not io.full_res_iou or source == "synthetic":
        return None
    from harness.evalset import Resize, load_eval_folder

    h, w = target.input.height, target.input.width
    return load_eval_folder(
        Path(source), h, w, mask_class=io.mask_class, resize=Resize.parse(io.resize), limit=n
    )


def eval_source(source: str, io: IoOptions) -> dict:
    """Where the eval set came from and how it was fitted (recorded with the run)."""
    if source == "synthetic":
        return {"source": source, "resize": None, "mask_class": None}
    return {"source": source, "resize": io.resize or "stretch", "mask_class": io.mask_class}


def fill_prior(images: np.ndarray, prior: Prior, target: Target) -> np.ndarray:
    """4-channel images with the prior-mask channel replaced per ``prior``.

    ``empty``: zeros. ``previous``: a video's frames in eval-set order, the first with an empty
    prior, each next one with the desktop model's mask (0/255) of the one before.
    """
    from harness.convert.reference import decode_output, preprocess, run_tflite

    out = np.array(images, copy=True)
    out[..., 3] = 0
    if prior is Prior.EMPTY:
        return out
    for i in range(len(out) - 1):
        x = preprocess(out[i : i + 1], target.input)
        raw = run_tflite(target.path, x, output_index=max(target.output.index, 0))
        _, mask = decode_output(raw[0], target.output)
        out[i + 1, ..., 3] = mask * np.uint8(255)
    return out


def input_key(eval_fingerprint: str, spec: InputSpec) -> str:
    """Identifies a preprocessed input set: same eval set + same input spec = same bytes."""
    blob = json.dumps(spec.to_dict(), sort_keys=True).encode() + eval_fingerprint.encode()
    return hashlib.sha256(blob).hexdigest()[:16]
