"""The per-cell outputs blob: an npz np.load reads back exactly; masks deflated, floats stored."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.store import encode_arrays


@settings(max_examples=50, deadline=None)
@given(
    fg=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=16)),
    mask=hnp.arrays(np.bool_, hnp.array_shapes(min_dims=1, max_dims=3, max_side=16)),
    raw=hnp.arrays(np.uint8, st.tuples(st.integers(1, 4), st.integers(1, 64))),
)
def test_roundtrip_is_exact(fg, mask, raw):
    blob = encode_arrays({"device_fg": fg, "device_mask": mask, "device_raw": raw})
    loaded = np.load(io.BytesIO(blob))
    np.testing.assert_array_equal(loaded["device_fg"], fg)  # NaN == NaN here
    assert loaded["device_mask"].dtype == np.bool_ and (loaded["device_mask"] == mask).all()
    assert loaded["device_raw"].tobytes() == raw.tobytes()


def test_masks_are_deflated_and_outputs_stored():
    mask = np.zeros((4, 64, 64), np.bool_)
    blob = encode_arrays({"device_mask": mask, "device_fg": np.ones((4, 64, 64), np.float32)})
    kinds = {i.filename: i.compress_type for i in zipfile.ZipFile(io.BytesIO(blob)).infolist()}
    assert kinds == {"device_mask.npy": zipfile.ZIP_DEFLATED, "device_fg.npy": zipfile.ZIP_STORED}
    assert len(blob) < 4 * 64 * 64 * 4 + 2000  # the mask costs next to nothing
