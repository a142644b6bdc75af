"""One I/O spec resolution: metadata normalization, flags, unknown warnings, output choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli, tfcompat
from harness.convert.inspection import inspect_tflite
from harness.convert.iospec import UNKNOWN_WARNING, IoOptions, NormSource, Prior, resolve_io
from harness.convert.specs import Semantics
from harness.errors import ExitCode, UsageError
from harness.tflite.metadata import input_normalizations
from harness.tflite.model import read_tflite


def metadata_buffer(mean: list[float], std: list[float]) -> bytes:
    """A minimal ``M001`` ModelMetadata with one input's NormalizationOptions (schema order)."""
    import flatbuffers

    b = flatbuffers.Builder(256)

    def floats(values: list[float]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def tables(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    mean_v, std_v = floats(mean), floats(std)
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
    b.PrependUOffsetTRelativeSlot(1, std_v, 0)
    norm = b.EndObject()
    b.StartObject(2)  # ProcessUnit { options_type, options }
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, norm, 0)
    unit = b.EndObject()
    units = tables([unit])
    name = b.CreateString("image")
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tensor = b.EndObject()
    inputs = tables([tensor])
    b.StartObject(9)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    subgraph = b.EndObject()
    subgraphs = tables([subgraph])
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(data: bytes, buffer: bytes) -> bytes:
    """``data`` with a TFLITE_METADATA entry pointing at a new buffer holding ``buffer``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    buf = schema.BufferT()
    buf.data = np.frombuffer(buffer, np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _convert(fn, shape) -> bytes:
    tf = tfcompat.tf()
    cf = tf.function(fn, autograph=False).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    return bytes(tf.lite.TFLiteConverter.from_concrete_functions([cf]).convert())


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A non-square 3-channel sigmoid map model without metadata."""
    tf = tfcompat.tf()
    return _convert(lambda x: tf.math.sigmoid(x[..., :1] * 2.0), [1, 24, 40, 3])


def test_metadata_normalization_is_read_and_used(plain: bytes, tmp_path: Path) -> None:
    meta = metadata_buffer([127.5], [127.5])
    assert input_normalizations(meta) == (((127.5,), (127.5,)),)
    path = tmp_path / "m.tflite"
    path.write_bytes(with_metadata(plain, meta))
    tm = read_tflite(path)
    assert tm.input_normalization == (((127.5,), (127.5,)),)
    io = resolve_io(tm)
    assert io.normalization_source is NormSource.METADATA and io.warnings == ()
    assert io.input.normalization.mean == (127.5,) and io.input.shape == (1, 24, 40, 3)
    # flags that agree are fine; flags that contradict are refused in one line
    assert resolve_io(tm, options=IoOptions(input_range="-1,1")).warnings == ()
    with pytest.raises(UsageError, match="contradicts the metadata") as err:
        resolve_io(tm, options=IoOptions(mean="0", std="255"))
    assert "\n" not in str(err.value) and err.value.exit_code == ExitCode.USAGE


def test_garbage_metadata_reads_as_none() -> None:
    assert input_normalizations(b"") == ()
    assert input_normalizations(b"\x08\x00\x00\x00M001\xff\xff") == ()
    assert input_normalizations(metadata_buffer([1.0], [1.0])[:-12]) == ()


def test_unknown_normalization_warns_everywhere(plain: bytes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "plain.tflite"
    path.write_bytes(plain)
    io = resolve_io(read_tflite(path))
    assert io.normalization_source is NormSource.UNKNOWN and io.warnings == (UNKNOWN_WARNING,)
    cli.main(["inspect", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["warnings"] == [UNKNOWN_WARNING] and data["io"]["normalization_source"] == "unknown"
    cli.main(["inspect", str(path)])
    assert "warning:" in capsys.readouterr().out
    flagged = resolve_io(read_tflite(path), options=IoOptions(input_range="0,1"))
    assert flagged.normalization_source is NormSource.FLAG and flagged.warnings == ()
    assert flagged.input.normalization.std == (255.0,)


def test_bad_flags_are_one_line_usage_errors() -> None:
    for kwargs, text in (
        ({"mean": "1"}, "go together"),
        ({"mean": "1", "std": "2", "input_range": "0,1"}, "not both"),
        ({"input_range": "0,2"}, "expected one of"),
        ({"activation": "tanh"}, "unknown --activation"),
        ({"prior": "last"}, "gt|empty|previous"),
    ):
        with pytest.raises(UsageError, match=text):
            IoOptions(**kwargs)


@pytest.fixture(scope="module")
def two_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose first output is a vector [1, 195] and second a 2-class map."""
    keras = tfcompat.keras()
    inp = keras.Input((16, 16, 3), batch_size=1)
    vec = keras.layers.Dense(195, name="scores")(keras.layers.Flatten()(inp))
    seg = keras.layers.Conv2D(2, 1, activation="softmax", name="seg")(inp)
    model = keras.Model(inp, [vec, seg])
    path = tmp_path_factory.mktemp("multi") / "multi.tflite"
    path.write_bytes(tfcompat.tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_output_choice(two_outputs: Path) -> None:
    tm = read_tflite(two_outputs)
    shapes = [t.shape for t in tm.outputs]
    vec_pos = next(i for i, s in enumerate(shapes) if len(s) == 2)
    map_pos = 1 - vec_pos
    default = resolve_io(tm)  # the first per-pixel output, whatever its position
    assert default.output.index == tm.outputs[map_pos].index
    assert default.output.semantics is Semantics.CLASS_PROBABILITIES
    by_name = resolve_io(tm, options=IoOptions(output=tm.outputs[map_pos].name))
    assert by_name.output == default.output
    assert resolve_io(tm, options=IoOptions(output=str(map_pos))).output == default.output
    with pytest.raises(UsageError, match="not a per-pixel map"):
        resolve_io(tm, options=IoOptions(output=str(vec_pos)))
    with pytest.raises(UsageError, match="has 2 output"):
        resolve_io(tm, options=IoOptions(output="5"))
    with pytest.raises(UsageError, match="no such output"):
        resolve_io(tm, options=IoOptions(output="nope"))
    insp = inspect_tflite(two_outputs, IoOptions(fg_channel=0))
    assert insp.output.foreground_channel == 0


def test_prior_needs_four_channels(plain: bytes, tmp_path: Path) -> None:
    path = tmp_path / "plain.tflite"
    path.write_bytes(plain)
    with pytest.raises(UsageError, match="4-channel"):
        resolve_io(read_tflite(path), options=IoOptions(prior="empty", input_range="0,1"))
    tf = tfcompat.tf()
    four = tmp_path / "four.tflite"
    four.write_bytes(_convert(lambda x: tf.math.sigmoid(x[..., 3:]), [1, 8, 8, 4]))
    assert resolve_io(read_tflite(four)).prior is Prior.GT
    assert resolve_io(read_tflite(four), options=IoOptions(prior="empty")).prior is Prior.EMPTY


def test_cli_one_line_errors(two_outputs: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["inspect", str(two_outputs), "--output", "7"])
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --output 7") and len(err.splitlines()) == 1


def test_prior_channel_empty_and_previous(tmp_path: Path) -> None:
    """``previous``: image i+1's prior is the desktop mask of image i (a video, in order)."""
    from harness.bench.plan import fill_prior, resolve_targets

    tf = tfcompat.tf()
    path = tmp_path / "video.tflite"  # fg where the red channel is above mid-grey
    path.write_bytes(_convert(lambda x: tf.math.sigmoid(10.0 * x[..., :1]), [1, 8, 12, 4]))
    io = IoOptions(input_range="-1,1", prior="previous")
    _, [target] = resolve_targets(str(path), None, io)
    assert target.io.prior is Prior.PREVIOUS
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 8, 12, 4), dtype=np.uint8)
    images[..., 0] = np.where(images[..., 0] == 128, 129, images[..., 0])  # no ties at 0.5
    out = fill_prior(images, Prior.PREVIOUS, target)
    assert (out[0, ..., 3] == 0).all()
    for i in (1, 2):
        expected = (images[i - 1, ..., 0] > 127.5).astype(np.uint8) * 255
        assert np.array_equal(out[i, ..., 3], expected)
    assert np.array_equal(out[..., :3], images[..., :3])
    assert (fill_prior(images, Prior.EMPTY, target)[..., 3] == 0).all()


def test_from_flags_picks_the_io_flags_among_a_commands_parameters():
    flags = {"model": "m", "runs": 3, "mean": "127.5", "std": "127.5", "fg_channel": 0}
    flags |= {"full_res_iou": False, "output": None, "json_out": True}
    io = IoOptions.from_flags(flags)
    assert io.to_dict() == {"mean": "127.5", "std": "127.5", "fg_channel": 0}  # 0 is kept
    assert IoOptions.from_flags({"full_res_iou": True}).full_res_iou is True
    with pytest.raises(UsageError, match="--mean and --std go together"):
        IoOptions.from_flags({"mean": "127.5", "runs": 3})
