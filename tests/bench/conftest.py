"""A converted tiny model and two virtual phones, shared by the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.convert import testing
from harness.convert.pipeline import ConvertOptions, convert_model
from harness.convert.variants import Head, Precision


@pytest.fixture(scope="session")
def bench_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench") / "tiny"
    testing.make_model_folder(folder, size=64, n_train=128, n_val=16, epochs=6, seed=1)
    convert_model(
        folder,
        ConvertOptions(
            heads=(Head.SOFTMAX, Head.SIGMOID, Head.LOGITS),
            precisions=(Precision.FP32, Precision.FP16),
            accuracy=False,
        ),
    )
    return folder
