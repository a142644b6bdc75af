"""Fixtures for the converter: a tiny trained model folder and one full conversion of it.

The model is trained once per session (a few seconds) and the whole precision matrix is
converted once; tests that write copy the folder first.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness.convert import testing
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Manifest

SIZE = 64
N_TRAIN = 256
N_VAL = 32
SEED = 0

Provider = Callable[[str], tuple[np.ndarray, np.ndarray]]


def make_provider(channels: int = 3) -> Provider:
    images, masks = testing.blob_images(N_TRAIN + N_VAL, SIZE, SEED, channels)

    def provider(split: str) -> tuple[np.ndarray, np.ndarray]:
        if split == "train":
            return images[:N_TRAIN], masks[:N_TRAIN]
        return images[N_TRAIN:], masks[N_TRAIN:]

    return provider


@pytest.fixture(scope="session")
def provider() -> Provider:
    return make_provider()


@pytest.fixture(scope="session")
def pristine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained fixture model folder. Never write into it: use ``model_copy``."""
    folder = tmp_path_factory.mktemp("pristine") / "tiny"
    return testing.make_model_folder(folder, size=SIZE, n_train=N_TRAIN, n_val=N_VAL, seed=SEED)


@pytest.fixture
def model_copy(pristine_model: Path, tmp_path: Path) -> Path:
    dst = tmp_path / pristine_model.name
    shutil.copytree(pristine_model, dst)
    return dst


@pytest.fixture(scope="session")
def converted(
    pristine_model: Path, provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Manifest]:
    """The default matrix (5 heads x fp32/fp16/int8-dynamic/int8 + softmax-qat), once."""
    folder = tmp_path_factory.mktemp("converted") / "tiny"
    shutil.copytree(pristine_model, folder)
    options = ConvertOptions(qat_samples=N_TRAIN, qat_epochs=2)
    manifest = convert_model(folder, options, data=provider)
    return folder, manifest
