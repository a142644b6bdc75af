"""diagnose on a lone float .tflite with the softmax baked in: heads made by graph surgery,
compared on the virtual SM-G973F, and one recommended (issue 16)."""

from __future__ import annotations

import shutil

from harness.convert.variants import read_manifest
from harness.diagnose import run_diagnose
from tests.diagnose.conftest import options


def test_lone_softmax_file_gets_heads_and_a_recommendation(diag_folders, start_phone, tmp_path):
    hot = diag_folders["hot"]
    lone = tmp_path / "team" / "portrait_64_softmax.tflite"
    lone.parent.mkdir()
    shutil.copy(hot / read_manifest(hot).get("softmax-fp32").file, lone)  # no manifest beside
    phone = start_phone("SM-G973F")
    # the team's normalization, given as flags (the file has no metadata)
    io = {"mean": "127.5", "std": "127.5"}
    diagnosis = run_diagnose(options(lone, phone, tmp_path / "r.db", io=io))
    variants = {v["id"]: v for v in diagnosis["variants"]}
    assert set(variants) == {"softmax-fp32", "sigmoid-fp32", "logits-fp32", "argmax-fp32"}
    assert all(v["built"] for v in variants.values())
    assert diagnosis["warnings"] == []  # the normalization was given
    assert diagnosis["largest_logit"]["value"] > 11.09  # precondition: past the FP16 exp range
    [device] = diagnosis["devices"]
    matrix = {(c["head"], c["delegate"]): c for c in device["matrix"]}
    assert matrix["softmax", "gpu"]["verdict"] == "nan"
    assert matrix["sigmoid", "gpu"]["verdict"] == "ok"
    rec = device["recommendation"]["recommended"]
    assert rec["delegate"] == "gpu" and rec["variant"] in ("sigmoid-fp32", "logits-fp32")
    # a second diagnosis reuses the heads made the first time
    again = run_diagnose(options(lone, phone, tmp_path / "r2.db", io=io, delegates="cpu"))
    assert not any(v["built"] for v in again["variants"])
