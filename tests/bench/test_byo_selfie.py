"""Bring your own model: a published selfie model from PyPI, benched on real photos.

MediaPipe's ``selfie_segmentation.tflite`` (1-channel sigmoid, a ``Convolution2DTransposeBias``
custom op that only XNNPACK resolves, input in [0, 1] stated in its TFLite metadata) on three
photos shipped by registry packages, with hand-drawn person masks (tests/data/photos). The bench
must resolve the normalization from the metadata by itself, and its IoU vs ground truth must
equal an evaluation made here independently, with ai-edge-litert and numpy only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.bench.run import BenchOptions, run_bench
from harness.errors import ExitCode, UsageError
from harness.store import Store
from tests import photos

SIZE = 256  # the model's input, 256x256x3 float32


@pytest.fixture(scope="module")
def selfie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photos.selfie_model(tmp_path_factory.mktemp("byo") / "selfie_segmentation.tflite")


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photos.photo_folder(tmp_path_factory.mktemp("photos"))


def desktop_iou(model: Path) -> float:
    """Independent evaluation: the model's documented [0, 1] input, LiteRT, numpy IoU."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))  # default resolver: XNNPACK runs the custom op
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ious = []
    for stem in sorted(photos.PHOTOS):
        x = cv2.resize(photos.photo_rgb(stem), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        interp.set_tensor(inp["index"], (x.astype(np.float32) / 255.0)[None])
        interp.invoke()
        pred = interp.get_tensor(out["index"])[0, ..., 0] > 0.5
        gt = cv2.resize(
            photos.mask(stem).astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        ious.append(np.count_nonzero(pred & gt) / np.count_nonzero(pred | gt))
    return float(np.mean(ious))


def _opts(model: Path, phone, store: Path, folder: Path, **kw) -> BenchOptions:
    base = dict(
        model=str(model),
        devices=(phone.serial,),
        store=str(store),
        runs=2,
        warmup=1,
        repeats=1,
        images=3,
        delegates="cpu,gpu-fp32",
        eval_set=str(folder),
    )
    base.update(kw)
    return BenchOptions(**base)


def test_selfie_model_on_real_photos_matches_desktop_evaluation(
    selfie, photo_set, phones, tmp_path
):
    expected = desktop_iou(selfie)
    assert expected > 0.6  # precondition: the documented normalization gives a real mask
    store_path = tmp_path / "r.db"
    out = run_bench(_opts(selfie, phones[0], store_path, photo_set))  # no normalization flags
    assert out.status == "complete" and len(out.cells) == 2
    assert out.warnings == []  # the normalization was known: from the model's metadata
    with Store(store_path) as store:
        config = store.run(out.run_id)["config"]
    assert config["variants"][0]["io"]["normalization_source"] == "metadata"
    for cell in out.cells:
        gt_iou = cell.accuracy.gt.iou
        assert abs(gt_iou - expected) <= 0.02, (cell.delegate, gt_iou, expected)
        assert cell.accuracy.reference.iou >= 0.99


def test_flag_contradicting_metadata_is_refused(selfie, photo_set, phones, tmp_path):
    with pytest.raises(UsageError, match="contradicts the metadata") as err:
        run_bench(
            _opts(selfie, phones[0], tmp_path / "r.db", photo_set, io={"input_range": "0,255"})
        )
    assert err.value.exit_code == ExitCode.USAGE
    assert not (tmp_path / "r.db").exists()  # refused before anything was measured


def full_res_desktop_iou(model: Path) -> float:
    """Independent: the desktop mask at 256x256, upsampled (nearest) to the photo's size."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ious = []
    for stem in sorted(photos.PHOTOS):
        rgb, gt = photos.photo_rgb(stem), photos.mask(stem)
        x = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        interp.set_tensor(inp["index"], (x.astype(np.float32) / 255.0)[None])
        interp.invoke()
        pred = (interp.get_tensor(out["index"])[0, ..., 0] > 0.5).astype(np.uint8)
        full = cv2.resize(pred, gt.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
        ious.append(np.count_nonzero(full & gt) / np.count_nonzero(full | gt))
    return float(np.mean(ious))


def test_flag_agreeing_with_metadata_is_accepted(selfie, photo_set, phones, tmp_path):
    io = {"input_range": "0,1", "full_res_iou": True}
    out = run_bench(_opts(selfie, phones[0], tmp_path / "r.db", photo_set, delegates="cpu", io=io))
    assert out.status == "complete" and out.warnings == []
    gt = out.cells[0].accuracy.gt
    assert abs(gt.iou_full_res - full_res_desktop_iou(selfie)) <= 0.02, gt


def test_without_metadata_the_unknown_normalization_is_shown(selfie, photo_set, phones, tmp_path):
    """The issue's trap: no stated normalization. Raw 0..255 pixels are fed (IoU drops) and
    the run says so in the outcome, the store and the Markdown/HTML report."""
    from ai_edge_litert.tools import flatbuffer_utils

    from harness.convert.iospec import UNKNOWN_WARNING
    from harness.report.assemble import load_report
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    model = flatbuffer_utils.read_model(str(selfie))
    model.metadata = []  # what a converter without the metadata writer produces
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    store_path = tmp_path / "r.db"
    out = run_bench(_opts(bare, phones[0], store_path, photo_set, delegates="cpu"))
    assert out.warnings == [f"bare: {UNKNOWN_WARNING}"]
    assert out.cells[0].accuracy.gt.iou < desktop_iou(selfie) - 0.3  # 0..255 fed
    with Store(store_path) as store:
        report = load_report(store, [out.run_id], with_samples=False)
    assert report.runs[0].normalization_sources == {"bare": "unknown"}
    assert UNKNOWN_WARNING in render_markdown(report)
    assert "input normalization" in render_html(report) and "raw pixels 0..255" in render_html(
        report
    )


def _voc_folder(dest: Path) -> Path:
    """The photos with VOC-style masks: class 15 = person, 0 = background, a 255 ("ignore")
    band 3 px wide along the person's outline, as palette PNGs."""
    from PIL import Image

    photos.photo_folder(dest)
    for stem in photos.PHOTOS:
        person = photos.mask(stem).astype(np.uint8)
        band = cv2.dilate(person, np.ones((7, 7), np.uint8)) - cv2.erode(
            person, np.ones((7, 7), np.uint8)
        )
        voc = np.where(person > 0, 15, 0).astype(np.uint8)
        voc[band > 0] = 255
        im = Image.fromarray(voc, mode="L").convert("P")
        im.putpalette([v for i in range(256) for v in (i, i, i)])
        im.save(dest / "masks" / f"{stem}.png")
    return dest


def letterbox_desktop_iou(model: Path) -> float:
    """Independent: aspect kept, black padding; padding and the 255 band are not scored."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ious = []
    for stem in sorted(photos.PHOTOS):
        rgb, person = photos.photo_rgb(stem), photos.mask(stem).astype(np.uint8)
        band = cv2.dilate(person, np.ones((7, 7), np.uint8)) - cv2.erode(
            person, np.ones((7, 7), np.uint8)
        )
        h, w = rgb.shape[:2]
        s = min(SIZE / h, SIZE / w)
        nh, nw = round(h * s), round(w * s)
        top, left = (SIZE - nh) // 2, (SIZE - nw) // 2
        x = np.zeros((SIZE, SIZE, 3), np.uint8)
        x[top : top + nh, left : left + nw] = cv2.resize(
            rgb, (nw, nh), interpolation=cv2.INTER_AREA
        )
        valid = np.zeros((SIZE, SIZE), bool)
        valid[top : top + nh, left : left + nw] = (
            cv2.resize(band, (nw, nh), interpolation=cv2.INTER_NEAREST) == 0
        )
        gt = np.zeros((SIZE, SIZE), bool)
        gt[top : top + nh, left : left + nw] = (
            cv2.resize(person, (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
        )
        interp.set_tensor(inp["index"], (x.astype(np.float32) / 255.0)[None])
        interp.invoke()
        pred = interp.get_tensor(out["index"])[0, ..., 0] > 0.5
        p, g = pred[valid], gt[valid]
        ious.append(np.count_nonzero(p & g) / np.count_nonzero(p | g))
    return float(np.mean(ious))


def test_voc_masks_letterboxed_match_desktop_evaluation(selfie, phones, tmp_path):
    folder = _voc_folder(tmp_path / "voc")
    expected = letterbox_desktop_iou(selfie)
    assert expected > 0.6
    io = {"mask_class": 15, "resize": "letterbox"}
    store_path = tmp_path / "r.db"
    out = run_bench(_opts(selfie, phones[0], store_path, folder, delegates="cpu", io=io))
    [cell] = out.cells
    assert abs(cell.accuracy.gt.iou - expected) <= 0.02, (cell.accuracy, expected)
    assert cell.accuracy.gt.ignored_pixels > 0
    with Store(store_path) as store:
        eval_cfg = store.run(out.run_id)["config"]["eval_set"]
    assert eval_cfg["resize"] == "letterbox" and eval_cfg["mask_class"] == 15
    with pytest.raises(UsageError, match="--mask-class 9: no mask"):
        run_bench(_opts(selfie, phones[0], tmp_path / "r2.db", folder, io={"mask_class": 9}))
    assert not (tmp_path / "r2.db").exists()
