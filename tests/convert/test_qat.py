"""QAT that folds: BatchNormalization folded into the convolutions, the QAT graph equal to the
int8 post-training graph of the same net (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import tfcompat
from harness.convert import folding, quantize
from harness.convert.tflite_model import read_tflite
from harness.convert.variants import Head, Precision


def _with_bn_stats(model, seed: int = 0):
    """Give every BN non-trivial statistics (fresh BNs are the identity: folding them would
    prove nothing)."""
    rng = np.random.default_rng(seed)
    keras = tfcompat.keras()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype(np.float32),  # gamma
                    rng.uniform(-0.3, 0.3, n).astype(np.float32),  # beta
                    rng.uniform(-0.2, 0.2, n).astype(np.float32),  # moving mean
                    rng.uniform(0.5, 2.0, n).astype(np.float32),  # moving variance
                ]
            )
    return model


@pytest.fixture(scope="module")
def sinet64():
    from harness.train import nets

    tfcompat.keras().utils.set_random_seed(0)
    return _with_bn_stats(nets.build("sinet-lite", 64).inference)


@pytest.fixture(scope="module")
def x64() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(-1, 1, (16, 64, 64, 3)).astype(np.float32)


def test_fold_weights_conv_and_depthwise() -> None:
    rng = np.random.default_rng(0)
    gamma, beta = np.array([2.0, 0.5]), np.array([1.0, -1.0])
    mean, var = np.array([0.5, -0.5]), np.array([3.0, 0.0])
    conv = rng.normal(size=(1, 1, 3, 2))
    k, b = folding.fold_weights("Conv2D", conv, None, gamma, beta, mean, var, 1.0)
    s = gamma / np.sqrt(var + 1.0)
    np.testing.assert_allclose(k, conv * s, rtol=1e-6)
    np.testing.assert_allclose(b, -mean * s + beta, rtol=1e-6)
    dw = rng.normal(size=(3, 3, 2, 1))  # depthwise: output channel c = input channel c
    k, b = folding.fold_weights("DepthwiseConv2D", dw, np.ones(2), gamma, beta, mean, var, 1.0)
    np.testing.assert_allclose(k[..., 0], dw[..., 0] * s, rtol=1e-6)
    np.testing.assert_allclose(b, (1 - mean) * s + beta, rtol=1e-6)


def test_fold_and_fuse_keep_the_function(sinet64, x64) -> None:
    keras = tfcompat.keras()
    n_bn = sum(isinstance(la, keras.layers.BatchNormalization) for la in sinet64.layers)
    folded, n_folded = folding.fold_batchnorm(sinet64)
    fused, n_fused = folding.fuse_relus(folded)
    assert n_folded == n_bn > 0  # every BN of sinet-lite follows a convolution
    assert not any(isinstance(la, keras.layers.BatchNormalization) for la in fused.layers)
    assert n_fused > 0
    ref = sinet64.predict(x64[:4], verbose=0)
    np.testing.assert_allclose(fused.predict(x64[:4], verbose=0), ref, atol=1e-4, rtol=1e-4)
    # the source model is untouched
    assert sum(isinstance(la, keras.layers.BatchNormalization) for la in sinet64.layers) == n_bn


def test_qat_graph_has_exactly_the_ptq_ops(sinet64, x64, tmp_path) -> None:
    ptq = quantize.convert_variant(sinet64, Head.SOFTMAX, Precision.INT8, representative=x64)
    qat_model = quantize.make_qat_model(sinet64, x64, epochs=1, calibration_samples=16)
    qat = quantize.convert_variant(qat_model, Head.SOFTMAX, Precision.QAT, representative=x64)
    (tmp_path / "ptq.tflite").write_bytes(ptq)
    (tmp_path / "qat.tflite").write_bytes(qat)
    ptq_ops = read_tflite(tmp_path / "ptq.tflite").op_names
    qat_ops = read_tflite(tmp_path / "qat.tflite").op_names
    assert "QUANTIZE" not in qat_ops and "MUL" not in qat_ops
    assert len(qat_ops) == len(ptq_ops)
    assert sorted(qat_ops) == sorted(ptq_ops)
