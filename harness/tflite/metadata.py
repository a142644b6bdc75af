"""The TFLite model metadata (the ``TFLITE_METADATA`` buffer): what the input normalization is.

A ``.tflite`` made with the TFLite Support metadata writer carries a second flatbuffer
(identifier ``M001``, schema ``tensorflow_lite_support/metadata/metadata_schema.fbs``) in one of
its buffers, named by a ``Model.metadata`` entry ``TFLITE_METADATA``. Its
``ModelMetadata.subgraph_metadata[0].input_tensor_metadata[i].process_units`` may hold a
``NormalizationOptions`` unit: ``input = (pixel - mean) / std`` per channel, pixels 0..255.

Only that table path is read, with the ``flatbuffers`` runtime's generic ``Table`` (the schema's
generated bindings are not shipped with ai-edge-litert, and the harness adds no dependency for
them). Pure: bytes in, values out; a malformed buffer reads as "no normalization".
"""

from __future__ import annotations

import struct

__all__ = ["METADATA_NAME", "NormalizationPair", "input_normalizations"]

METADATA_NAME = b"TFLITE_METADATA"
_IDENTIFIER = b"M001"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union: NONE=0, NormalizationOptions=1, ...

# Field slots, from metadata_schema.fbs (vtable offset = 4 + 2 * slot).
_MODEL_SUBGRAPHS = 3  # ModelMetadata.subgraph_metadata
_SUBGRAPH_INPUTS = 2  # SubGraphMetadata.input_tensor_metadata
_TENSOR_PROCESS_UNITS = 4  # TensorMetadata.process_units
_UNIT_OPTIONS_TYPE = 0  # ProcessUnit.options_type (ubyte)
_UNIT_OPTIONS = 1  # ProcessUnit.options (table)
_NORM_MEAN, _NORM_STD = 0, 1  # NormalizationOptions.mean / .std ([float])

NormalizationPair = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std)


def input_normalizations(buffer: bytes) -> tuple[NormalizationPair | None, ...]:
    """Per input tensor of subgraph 0: its ``(mean, std)`` or None; ``()`` if unreadable."""
    if len(buffer) < 8 or buffer[4:8] != _IDENTIFIER:
        return ()
    try:
        return _read(buffer)
    except (struct.error, IndexError, ValueError):
        return ()


def _read(buf: bytes) -> tuple[NormalizationPair | None, ...]:
    root = _u32(buf, 0)
    subgraphs = _vector(buf, root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        return ()
    inputs = _vector(buf, _table_at(buf, subgraphs[0]), _SUBGRAPH_INPUTS)
    out: list[NormalizationPair | None] = []
    for tensor_pos in inputs:
        found = None
        for unit_pos in _vector(buf, _table_at(buf, tensor_pos), _TENSOR_PROCESS_UNITS):
            unit = _table_at(buf, unit_pos)
            if _scalar_u8(buf, unit, _UNIT_OPTIONS_TYPE) != _NORMALIZATION_OPTIONS:
                continue
            opt_field = _field(buf, unit, _UNIT_OPTIONS)
            if opt_field is None:
                continue
            options = opt_field + _u32(buf, opt_field)
            mean, std = _floats(buf, options, _NORM_MEAN), _floats(buf, options, _NORM_STD)
            if mean and std:
                found = (mean, std)
            break
        out.append(found)
    return tuple(out)


def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _field(buf: bytes, table: int, slot: int) -> int | None:
    """Absolute position of a table's field, or None when the field is absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    offset_pos = 4 + 2 * slot
    if offset_pos >= vt_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + offset_pos)[0]
    return table + offset if offset else None


def _table_at(buf: bytes, element_pos: int) -> int:
    """A vector element holding an offset to a table -> the table's position."""
    return element_pos + _u32(buf, element_pos)


def _vector(buf: bytes, table: int, slot: int) -> list[int]:
    """Positions of the elements of a vector of tables (each element is a u32 offset)."""
    pos = _field(buf, table, slot)
    if pos is None:
        return []
    start = pos + _u32(buf, pos)
    count = _u32(buf, start)
    if count > 4096:
        raise ValueError("implausible vector length")
    return [start + 4 + 4 * i for i in range(count)]


def _floats(buf: bytes, table: int, slot: int) -> tuple[float, ...]:
    pos = _field(buf, table, slot)
    if pos is None:
        return ()
    start = pos + _u32(buf, pos)
    count = _u32(buf, start)
    if count > 64:
        raise ValueError("implausible normalization length")
    return tuple(float(v) for v in struct.unpack_from(f"<{count}f", buf, start + 4))


def _scalar_u8(buf: bytes, table: int, slot: int) -> int:
    pos = _field(buf, table, slot)
    return 0 if pos is None else buf[pos]
