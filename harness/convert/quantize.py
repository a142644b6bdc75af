"""Precisions: TFLite conversion of (network + head) and quantization-aware fine-tuning.

| precision    | converter settings                                                        |
|--------------|---------------------------------------------------------------------------|
| fp32         | plain conversion                                                          |
| fp16         | ``optimizations=[DEFAULT]``, ``supported_types=[float16]`` (fp16 weights)  |
| int8-dynamic | ``optimizations=[DEFAULT]``, no representative data (int8 weights)         |
| int8         | full integer PTQ: representative set, ``TFLITE_BUILTINS_INT8``, int8 I/O   |
| qat          | tfmot QAT (BN folded, ranges calibrated then frozen, distillation), int8  |

Integer I/O is **int8** (the TFLite native type); the manifest records scale and zero point.
The argmax head's uint8 mask is not quantized: only its input is int8.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from harness import tfcompat
from harness.convert._native import native_output_silenced
from harness.convert.heads import apply_tf
from harness.convert.variants import Head, Precision
from harness.errors import ConversionFailed

__all__ = [
    "INPUT_NAME",
    "build_qat_model",
    "convert_variant",
    "make_qat_model",
    "prepare_for_qat",
]

INPUT_NAME = "image"
CAL_BATCH = 16


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # TF converter errors carry the useful part on a line with "error:"
    for ln in lines:
        if "error:" in ln.lower():
            return ln[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _serving_function(model: Any, head: Head, fg: int) -> Any:
    """``tf.function`` image -> head(model(image)) with a fixed ``[1, H, W, C]`` signature."""
    tf = tfcompat.tf()
    shape = [1, *[int(d) for d in model.input_shape[1:]]]

    @tf.function(
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)], autograph=False
    )
    def serve(image: Any) -> Any:
        return apply_tf(head, model(image, training=False), fg)

    return serve


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
        serve = _serving_function(model, head, foreground_channel)
        # The tf.function as trackable object selects the frozen-graph conversion path: the
        # SavedModel path would re-trace every Keras layer (about 20x slower on small nets).
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], serve
        )
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
        with native_output_silenced(), warnings.catch_warnings():
            # QAT graphs carry their own input ranges; TF still asks for "statistics"
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
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


def _calibrate_ranges(qat: Any, samples: np.ndarray, batch_size: int, mode: str = "mean") -> None:
    """Set tfmot's activation ranges from data instead of its [-6, 6] start.

    tfmot tracks activation min/max with an EMA of decay 0.999 starting at [-6, 6]: a
    fine-tuning of a few hundred steps never leaves that start, and the converted ranges are
    far from the real ones. Here forward passes in training mode (no weight update) set them
    from ``samples``: ``mode="mean"`` (the default) to the mean of the per-batch min/max (an
    EMA of decay ``(k - 1) / k`` at batch k: the fixed point tfmot's EMA tends to),
    ``mode="minmax"`` to the min and max over all samples (what TFLite's post-training
    calibration records: the QAT model then starts at the PTQ model's ranges; a few outlying
    samples widen every range). The input's range is tfmot's all-values min/max in both.
    tfmot looks the function up on its module at call time; if that ever changes, the
    calibration is skipped (QAT still works, just less accurately).
    """
    try:
        from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
    except ImportError:
        return
    original = getattr(quant_ops, "MovingAvgQuantize", None)
    if original is None or len(samples) == 0:
        return
    tf = tfcompat.tf()
    state: dict[str, Any] = {"decay": 0.0, "seen": set()}

    def calibrating(inputs: Any, min_var: Any, max_var: Any, *args: Any, **kwargs: Any) -> Any:
        if mode != "minmax":
            kwargs["ema_decay"] = state["decay"]
            return original(inputs, min_var, max_var, *args, **kwargs)
        first = id(min_var) not in state["seen"]
        state["seen"].add(id(min_var))
        low, high = tf.identity(min_var), tf.identity(max_var)
        kwargs["ema_decay"] = 0.0  # the variables take this batch's range ...
        out = original(inputs, min_var, max_var, *args, **kwargs)
        if not first:  # ... widened to the range of the batches before
            min_var.assign(tf.minimum(min_var, low))
            max_var.assign(tf.maximum(max_var, high))
        return out

    quant_ops.MovingAvgQuantize = calibrating
    try:
        for k, start in enumerate(range(0, len(samples), batch_size), start=1):
            state["decay"] = (k - 1) / k
            qat(samples[start : start + batch_size], training=True)
    finally:
        quant_ops.MovingAvgQuantize = original


def _quantizable(layer: Any, registry: Any) -> bool:
    try:
        return bool(registry.supports(layer))
    except Exception:  # a layer type the registry cannot even inspect: leave it float
        return False


# Layers TFLite runs at one scale in and out (int8 kernels require it): a fake-quant on their
# output would differ from their input's and the converter would insert a QUANTIZE op.
_SAME_SCALE = ("AveragePooling2D", "MaxPooling2D", "UpSampling2D")


def _concat_feeders(model: Any) -> set[str]:
    """Layers whose output reaches a Concatenate directly or through same-scale layers.

    TFLite's int8 CONCATENATION needs its inputs at the output's scale; post-training
    quantization gets that by giving the producers the concat's scale. In QAT the producers
    must not fake-quantize their own outputs (the concat's fake-quant decides), else each
    input with its own range costs a QUANTIZE op.
    """
    consumers: dict[str, list[Any]] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            inbound = node.inbound_layers
            for src in inbound if isinstance(inbound, list) else [inbound]:
                consumers.setdefault(src.name, []).append(layer)

    def reaches_concat(name: str, depth: int = 0) -> bool:
        for c in consumers.get(name, []):
            kind = type(c).__name__
            if kind == "Concatenate":
                return True
            if kind in _SAME_SCALE and depth < 8 and reaches_concat(c.name, depth + 1):
                return True
        return False

    return {layer.name for layer in model.layers if reaches_concat(layer.name)}


def _quantize_config(layer: Any, registry: Any, feeds_concat: bool) -> Any | None:
    """A config that matches the int8 PTQ graph, or None for the registry's default."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )

    kind = type(layer).__name__
    if kind in _SAME_SCALE:
        return configs.NoOpQuantizeConfig()  # the output keeps the input's scale
    if not feeds_concat or kind == "Concatenate":
        return None
    default = registry.get_quantize_config(layer)
    if hasattr(default, "quantize_output") and hasattr(default, "activation_attrs"):
        cfg = default.get_config()
        cfg.update(activation_attrs=[], quantize_output=False)  # weights only
        return type(default).from_config(cfg)
    return configs.NoOpQuantizeConfig()


def prepare_for_qat(model: Any) -> Any:
    """``model`` with BatchNormalization folded into its convolutions and ReLUs fused into
    them (harness/convert/folding.py): the graph post-training quantization converts to."""
    from harness.convert.folding import fold_batchnorm, fuse_relus

    folded, _ = fold_batchnorm(model)
    fused, _ = fuse_relus(folded)
    return fused


def build_qat_model(model: Any) -> Any:
    """The quantization-aware model of ``model`` (not fine-tuned, ranges at tfmot's start).

    BN is folded and ReLUs fused first (:func:`prepare_for_qat`); layers the default 8-bit
    registry supports are annotated, the others stay float (the int8 conversion quantizes
    them from the representative set). Same-scale layers and the producers of concatenated
    tensors get configs that place the fake-quant ops where TFLite's int8 kernels put their
    scales, so the converted QAT graph has exactly the ops of the PTQ graph.
    """
    keras = tfcompat.keras()
    qk = tfcompat.tfmot().quantization.keras
    try:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry as reg,
        )

        registry = reg.Default8BitQuantizeRegistry()
        base = prepare_for_qat(model)
        feeders = _concat_feeders(base)

        def annotate(layer: Any) -> Any:
            config = layer.get_config()
            if isinstance(layer, keras.layers.BatchNormalization):
                config["trainable"] = False  # a BN left unfolded runs on its moving stats
            fresh = layer.__class__.from_config(config)
            if isinstance(layer, keras.layers.InputLayer) or not _quantizable(layer, registry):
                return fresh
            qconfig = _quantize_config(layer, registry, layer.name in feeders)
            return qk.quantize_annotate_layer(fresh, quantize_config=qconfig)

        clone = keras.models.clone_model(base, clone_function=annotate)
        clone.set_weights(base.get_weights())
        with qk.quantize_scope():
            return qk.quantize_apply(clone)
    except ConversionFailed:
        raise
    except Exception as exc:
        raise ConversionFailed(
            f"quantization-aware model could not be built: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc


def make_qat_model(
    model: Any,
    x_train: np.ndarray,
    *,
    representative: np.ndarray | None = None,
    epochs: int = 4,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    seed: int = 0,
    calibration_samples: int = 100,
    freeze_ranges: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Any:
    """Quantization-aware copy of ``model``, fine-tuned on normalized ``x_train``.

    Layers the default 8-bit registry supports are annotated; the rest stay float (the int8
    conversion then quantizes them from the representative set). The fine-tuning *distils*
    the float model: the targets are its own softmax outputs (cross-entropy on the logits),
    so the QAT variant re-expresses the trained model instead of being retrained towards the
    ground truth, and its accuracy against the float model is what QAT improves.

    Before fine-tuning, the activation ranges are calibrated (:func:`_calibrate_ranges`,
    mean of the per-batch min/max) on ``representative``, the samples post-training
    quantization calibrates on (``x_train[:calibration_samples]`` when not given). With
    ``freeze_ranges`` they then stay fixed while the weights are fine-tuned: the weights
    learn the ranges the int8 file will hold (tfmot would keep moving them with an EMA of
    8-sample batch extremes under the weights being fitted to them).
    """
    tf = tfcompat.tf()
    keras = tfcompat.keras()
    qat = build_qat_model(model)
    keras.utils.set_random_seed(seed)
    x_train = np.asarray(x_train, np.float32)
    calibration = x_train[:calibration_samples] if representative is None else representative
    _calibrate_ranges(qat, np.asarray(calibration, np.float32), batch_size=CAL_BATCH)
    logits = model.predict(x_train, batch_size=batch_size, verbose=0).astype(np.float64)
    teacher = np.exp(logits - logits.max(axis=-1, keepdims=True))
    teacher = (teacher / teacher.sum(axis=-1, keepdims=True)).astype(np.float32)
    qat.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    ds = tf.data.Dataset.from_tensor_slices((x_train, teacher))
    ds = ds.shuffle(len(x_train), seed=seed).batch(batch_size)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, float(logs.get("loss", 0)))
            )
        )
    try:
        with _ranges_frozen(freeze_ranges):
            qat.fit(ds, epochs=epochs, verbose=0, callbacks=callbacks)
    except Exception as exc:
        raise ConversionFailed(
            f"QAT fine-tuning failed: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    return qat


@contextlib.contextmanager
def _ranges_frozen(frozen: bool) -> Iterator[None]:
    """While active (and ``frozen``), tfmot's activation ranges keep their values in training
    mode (EMA decay 1): the fit traces its graph inside, so the whole fine-tuning is frozen."""
    try:
        from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
    except ImportError:
        frozen = False
    original = getattr(quant_ops, "MovingAvgQuantize", None) if frozen else None
    if original is None:
        yield
        return

    def fixed(*args: Any, **kwargs: Any) -> Any:
        kwargs["ema_decay"] = 1.0
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = fixed
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original
