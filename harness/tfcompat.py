"""The one place TensorFlow is loaded.

tensorflow-model-optimization (QAT) needs Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is imported for the first time. Every module that needs TF, tf_keras or tfmot
gets them from here, lazily, so commands that only talk to phones never pay for TF.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def _prepare_env() -> None:
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
            "tensorflow was imported before harness.tfcompat set TF_USE_LEGACY_KERAS"
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf() -> ModuleType:
    _prepare_env()
    import tensorflow

    return tensorflow


def keras() -> ModuleType:
    """tf_keras (Keras 2), the Keras used for training and conversion."""
    _prepare_env()
    import tf_keras

    return tf_keras


def tfmot() -> ModuleType:
    _prepare_env()
    import tensorflow_model_optimization

    return tensorflow_model_optimization
