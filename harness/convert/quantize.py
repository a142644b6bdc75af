"""Precisions: TFLite conversion of (network + head) and quantization-aware fine-tuning.

| precision    | converter settings                                                        |
|--------------|---------------------------------------------------------------------------|
| fp32         | plain conversion                                                          |
| fp16         | ``optimizations=[DEFAULT]``, ``supported_types=[float16]`` (fp16 weights)  |
| int8-dynamic | ``optimizations=[DEFAULT]``, no representative data (int8 weights)         |
| int8         | full integer PTQ: representative set, ``TFLITE_BUILTINS_INT8``, int8 I/O   |
| qat          | ``quantize_model`` + fine-tuning, then converted like int8                 |

Integer I/O is **int8** (the TFLite native type); the manifest records scale and zero point.
The argmax head's uint8 mask is not quantized: only its input is int8.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from harness import tfcompat
from harness.convert.heads import apply_tf
from harness.convert.variants import Head, Precision
from harness.errors import ConversionFailed

__all__ = ["INPUT_NAME", "convert_variant", "make_qat_model"]

INPUT_NAME = "image"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # TF converter errors carry the useful part on a line with "error:"
    for ln in lines:
        if "error:" in ln.lower():
            return ln[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """The MLIR converter prints calibration chatter ("fully_quantize: 0, ...") from C++ to
    the process's stdout/stderr; send both file descriptors to /dev/null meanwhile."""
    saved: list[int] = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append(os.dup(fd))
                os.dup2(devnull, fd)
            except OSError:
                saved.append(-1)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=False):
            if copy >= 0:
                os.dup2(copy, fd)
                os.close(copy)
        os.close(devnull)


def _serving_function(model: Any, head: Head, fg: int) -> Any:
    tf = tfcompat.tf()
    shape = [1, *[int(d) for d in model.input_shape[1:]]]

    @tf.function(
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)], autograph=False
    )
    def serve(image: Any) -> Any:
        return apply_tf(head, model(image, training=False), fg)

    return serve.get_concrete_function()


def convert_variant(
    model: Any,
    head: Head,
    precision: Precision,
    *,
    representative: np.ndarray | None = None,
    foreground_channel: int = 1,
) -> bytes:
    """Convert ``model`` (tf_keras, logits output) + ``head`` at ``precision`` to .tflite bytes.

    ``representative``: normalized float32 samples ``[N, H, W, C]`` (int8 and qat). For qat,
    ``model`` is the quantization-aware model from :func:`make_qat_model`.
    """
    tf = tfcompat.tf()
    head, precision = Head(head), Precision(precision)
    try:
        fn = _serving_function(model, head, foreground_channel)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
        if precision is Precision.FP16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision is Precision.INT8_DYNAMIC:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision.integer_io:
            if representative is None or len(representative) == 0:
                raise ConversionFailed(f"{precision} needs a representative data set")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            if head is not Head.ARGMAX:  # the mask output is uint8 already, not quantized
                converter.inference_output_type = tf.int8
        with _native_output_silenced():
            return bytes(converter.convert())
    except ConversionFailed:
        raise
    except Exception as exc:
        raise ConversionFailed(
            f"conversion of {head}-{precision} failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc


def _representative(samples: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def gen() -> Iterator[list[np.ndarray]]:
        for x in samples:
            yield [np.asarray(x, dtype=np.float32)[None]]

    return gen


def _quantizable(layer: Any, registry: Any) -> bool:
    try:
        return bool(registry.supports(layer))
    except Exception:  # a layer type the registry cannot even inspect: leave it float
        return False


def make_qat_model(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int = 2,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Any:
    """Quantization-aware copy of ``model`` fine-tuned on normalized ``x_train`` / masks.

    Layers the default 8-bit registry supports are annotated; the rest stay float (the int8
    conversion then quantizes them from the representative set). The loss is the trainer's:
    sparse categorical cross-entropy on the 2-channel logits.
    """
    tf = tfcompat.tf()
    keras = tfcompat.keras()
    tfmot = tfcompat.tfmot()
    qk = tfmot.quantization.keras
    try:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry as reg,
        )

        registry = reg.Default8BitQuantizeRegistry()

        def annotate(layer: Any) -> Any:
            if isinstance(layer, keras.layers.InputLayer) or not _quantizable(layer, registry):
                return layer.__class__.from_config(layer.get_config())
            return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()))

        clone = keras.models.clone_model(model, clone_function=annotate)
        clone.set_weights(model.get_weights())
        with qk.quantize_scope():
            qat = qk.quantize_apply(clone)
    except Exception as exc:
        raise ConversionFailed(
            f"quantization-aware model could not be built: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc

    keras.utils.set_random_seed(seed)
    qat.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ds = tf.data.Dataset.from_tensor_slices(
        (np.asarray(x_train, np.float32), np.asarray(y_train, np.int32)[..., None])
    )
    ds = ds.shuffle(len(x_train), seed=seed).batch(batch_size)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, float(logs.get("loss", 0)))
            )
        )
    try:
        qat.fit(ds, epochs=epochs, verbose=0, callbacks=callbacks)
    except Exception as exc:
        raise ConversionFailed(
            f"QAT fine-tuning failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    return qat
