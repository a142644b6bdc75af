"""The model folder as convert reads it (``model.keras`` + ``train.json``, written by
``harness train`` or ``harness import``; docs/model-folder.md): loaded and validated before
anything is written, and the train/val split it was trained on, rebuilt from ``train.json``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.convert.specs import Normalization
from harness.errors import ModelError
from harness.train import model_folder as trained_folder

__all__ = ["DataProvider", "ModelFolder", "default_data_provider", "load_model_folder"]

# split ("train" or "val") -> (images uint8 [N, H, W, C], masks uint8 [N, H, W])
DataProvider = Callable[[str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class ModelFolder:
    path: Path
    model: Any  # tf_keras model, logits output
    train_json: dict[str, Any]
    input_shape: tuple[int, int, int]  # H, W, C
    normalization: Normalization | None
    foreground_channel: int

    @property
    def name(self) -> str:
        return str(self.train_json.get("name") or self.path.name)


def load_model_folder(path: Path) -> ModelFolder:
    """Load and validate a model folder; ModelError (one line) if it is not usable."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a model folder (no such directory)")
    missing = [n for n in ("model.keras", "train.json") if not (folder / n).is_file()]
    if missing:
        raise ModelError(f"{folder} is not a model folder (missing {', '.join(missing)})")
    model, train_json = trained_folder.load(folder)  # ModelError when it is not one
    train_json = dict(train_json)
    if isinstance(model.output_shape, list) or len(model.inputs) != 1:
        raise ModelError(f"{folder}: the model must have one input and one output")
    out_shape = tuple(model.output_shape)
    in_shape = tuple(model.input_shape)
    if len(out_shape) != 4 or out_shape[-1] != 2:
        raise ModelError(
            f"{folder}: the model outputs {list(out_shape)}, expected 2-channel logits [N, H, W, 2]"
        )
    out_meta = train_json.get("output", {})
    if out_meta.get("kind", "logits") != "logits" or int(out_meta.get("channels", 2)) != 2:
        raise ModelError(f"{folder}: train.json output is {out_meta}, expected 2-channel logits")
    if len(in_shape) != 4 or None in in_shape[1:]:
        raise ModelError(f"{folder}: the model input {list(in_shape)} is not [N, H, W, C]")
    inp = train_json["input"]
    declared = (inp.get("height"), inp.get("width"), inp.get("channels"))
    if declared != tuple(in_shape[1:]):
        raise ModelError(
            f"{folder}: train.json input {list(declared)} does not match the model "
            f"{list(in_shape[1:])}"
        )
    norm = Normalization.from_dict(inp.get("normalization"))
    return ModelFolder(
        path=folder,
        model=model,
        train_json=train_json,
        input_shape=(int(in_shape[1]), int(in_shape[2]), int(in_shape[3])),
        normalization=norm,
        foreground_channel=int(out_meta.get("foreground_channel", 1)),
    )


def default_data_provider(mf: ModelFolder) -> DataProvider:
    """The model's own train/val split, rebuilt from train.json via ``harness.train.data``.

    ``data.source`` is ``"synthetic"`` (``synthetic_dataset(n_train + n_val, size, seed)``) or
    a folder path (``folder_dataset``, in ``data.layout``); the split is the trainer's ``split(dataset,
    val_ratio, seed)``, so the eval set is exactly the validation set the model never saw.
    """
    data = mf.train_json.get("data", {})
    source = data.get("source")
    size, _, channels = mf.input_shape
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def provider(split: str) -> tuple[np.ndarray, np.ndarray]:
        if not cache:
            from harness.train import data as train_data

            seed = int(data.get("seed", 0))
            if source == "synthetic":
                n = int(data.get("n_train", 0)) + int(data.get("n_val", 0))
                dataset = train_data.synthetic_dataset(n, size, seed, channels)
            elif isinstance(source, str) and Path(source).is_dir():
                layout = data.get("layout")  # absent in older train.json: detected
                dataset = train_data.folder_dataset(source, size, channels, layout)
            else:
                raise ModelError(
                    f"train.json data.source {source!r}: not 'synthetic' nor an existing folder"
                )
            train, val = train_data.split(dataset, float(data.get("val_ratio", 0.1)), seed)
            cache["train"] = (train.images, train.masks)
            cache["val"] = (val.images, val.masks)
        return cache[split]

    return provider
