"""NaN/Inf are counted over the whole output tensor, every channel (issue 12; FACTS.md §2: the
old GL softmax kernel leaves the *background* channel NaN while the foreground reads 0)."""

from __future__ import annotations

import numpy as np

from harness.bench import compare
from harness.cell import Fidelity, value_signature


def _signature(ref: dict) -> str:
    """The judge's signature of the bench's comparison (harness.cell.value_signature)."""
    return value_signature(Fidelity.from_json(ref)).value


def nan_background(n: int = 2, h: int = 8, w: int = 8, bad: int = 5):
    """A 2-channel softmax output whose background is NaN on ``bad`` pixels per image (fg 0 there,
    finite everywhere), next to the desktop reference: (device probs, device fg, ref fg)."""
    ref_fg = np.zeros((n, h, w), np.float32)
    ref_fg[:, : h // 2] = 0.9
    probs = np.stack([1 - ref_fg, ref_fg], axis=-1)
    flat = probs.reshape(n, h * w, 2)
    if bad:  # background pixels (the bottom half): inf/inf in the background channel...
        flat[:, -bad:, 0] = np.nan
        flat[:, -bad:, 1] = 0.0  # ...and x/inf = 0 in the foreground
    return probs, probs[..., 1], ref_fg


def test_nan_in_the_background_channel_is_counted_and_is_the_signature():
    probs, fg, ref_fg = nan_background()
    assert np.isfinite(fg).all()  # the precondition: the foreground alone looks plausible
    mask, ref_mask = (fg > 0.5).astype(np.uint8), (ref_fg > 0.5).astype(np.uint8)
    ref = compare.vs_reference(fg, mask, ref_fg, ref_mask, probs, whole_output=probs)
    assert ref["nan"] == 2 * 5 and ref["inf"] == 0
    assert ref["iou"] == 1.0  # the mask alone would call this cell right
    assert _signature(ref) == "nan"


def test_inf_in_any_channel_of_a_logits_output_is_counted():
    logits = np.zeros((1, 4, 4, 2), np.float32)
    logits[0, 0, 0, 0] = np.inf
    fg = np.full((1, 4, 4), 0.5, np.float32)
    mask = np.zeros((1, 4, 4), np.uint8)
    ref = compare.vs_reference(fg, mask, fg, mask, None, whole_output=logits)
    assert (ref["nan"], ref["inf"]) == (0, 1) and _signature(ref) == "nan"


def test_without_the_whole_output_the_foreground_and_probabilities_are_counted():
    probs, fg, ref_fg = nan_background(bad=3)
    mask, ref_mask = (fg > 0.5).astype(np.uint8), (ref_fg > 0.5).astype(np.uint8)
    ref = compare.vs_reference(fg, mask, ref_fg, ref_mask, probs)
    assert ref["nan"] == 2 * 3 and _signature(ref) == "nan"


def test_a_healthy_output_has_no_nonfinite_values():
    probs, fg, ref_fg = nan_background(bad=0)
    mask = (fg > 0.5).astype(np.uint8)
    ref = compare.vs_reference(fg, mask, ref_fg, mask, probs, whole_output=probs)
    assert ref["nan"] == ref["inf"] == 0 and _signature(ref) == "ok"
