"""model_folder.load: a clear ModelError for anything that is not a model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ExitCode, ModelError
from harness.train import model_folder


def _folder(tmp_path: Path, train_json: str | None, model: bytes | None) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    if train_json is not None:
        (root / "train.json").write_text(train_json)
    if model is not None:
        (root / "model.keras").write_bytes(model)
    return root


@pytest.mark.parametrize(
    ("train_json", "model", "message"),
    [
        (None, None, "is not a model folder"),
        ('{"arch": "x", "input": {}, "output": {}}', None, "is not a model folder"),
        ("{not json", b"zip", "is not readable JSON"),
        ('["a list"]', b"zip", "is not a JSON object"),
        ('{"arch": "x"}', b"zip", "has no 'input' key"),
        ('{"arch": "x", "input": {}, "output": {}}', b"not a zip", "cannot load"),
    ],
)
def test_load_rejects_non_model_folders(
    tmp_path: Path, train_json: str | None, model: bytes | None, message: str
) -> None:
    root = _folder(tmp_path, train_json, model)
    with pytest.raises(ModelError, match=message) as info:
        model_folder.load(root)
    assert info.value.exit_code == ExitCode.MODEL
    assert "\n" not in str(info.value)


def test_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model folder not found"):
        model_folder.load(tmp_path / "nope")
