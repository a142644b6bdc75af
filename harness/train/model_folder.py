"""The model folder (docs/model-folder.md): paths, train.json, and loading a trained model."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import tfcompat
from harness.errors import ModelError

MODEL_FILE = "model.keras"
TRAIN_JSON = "train.json"
STATE_JSON = "state.json"


@dataclass(frozen=True)
class ModelFolder:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def train_json(self) -> Path:
        return self.root / TRAIN_JSON

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def state_json(self) -> Path:
        return self.checkpoints / STATE_JSON

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:03d}.keras"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} not found") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ModelError(f"{path} is not a JSON object")
    return payload


def save_model(model, path: Path) -> None:
    """Save a tf_keras model as ``.keras`` atomically (written beside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(str(tmp))
    os.replace(tmp, path)


def load_keras(path: Path):
    """Load a ``.keras`` file saved by the trainer (built-in layers only, no compile)."""
    keras = tfcompat.keras()
    if not path.is_file():
        raise ModelError(f"{path} not found")
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # tf_keras raises ValueError/OSError/zipfile errors
        raise ModelError(f"cannot load {path}: {exc}") from exc


def load(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(keras_model, train_json_dict)`` of a model folder; ModelError if it is not one."""
    folder = ModelFolder(Path(path))
    if not folder.root.is_dir():
        raise ModelError(f"model folder not found: {folder.root}")
    if not folder.train_json.is_file() or not folder.model.is_file():
        raise ModelError(
            f"{folder.root} is not a model folder (needs {MODEL_FILE} and {TRAIN_JSON}; "
            "make one with `harness train`)"
        )
    info = read_json(folder.train_json)
    for key in ("arch", "input", "output"):
        if key not in info:
            raise ModelError(f"{folder.train_json} has no {key!r} key")
    model = load_keras(folder.model)
    return model, info
