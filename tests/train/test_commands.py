"""``harness train`` on the command line: bad input is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arch", "unet"], "unknown arch 'unet'"),
        (["--input-size", "64"], "--input-size must be between 128 and 512"),
        (["--input-size", "600"], "--input-size must be between 128 and 512"),
        (["--input-size", "200"], "not a multiple of 32"),
        (["--channels", "1"], "--channels must be 3"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--val-ratio", "1.5"], "--val-ratio must be between 0 and 1"),
        (["--augment", "flip-h,blur"], "unknown augmentation(s) blur"),
        (["--loss", "dice"], "unknown --loss 'dice'"),
        (["--resume", "--overwrite"], "cannot be used together"),
        (["--strategy", "warp"], "unknown --strategy 'warp'; choose one of: auto, mirrored"),
        (["--layout", "coco"], "unknown --layout 'coco'; choose one of: folders, eg1800"),
        (["--mixed-precision", "--strategy", "cpu"], "--mixed-precision needs a GPU"),
    ],
)
def test_bad_options(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert message in _fails([*argv, "--out", str(tmp_path / "m")], capsys)
    assert not (tmp_path / "m").exists()


def test_bad_data_folders(tmp_path: Path, capsys, make_pair) -> None:
    out = str(tmp_path / "m")
    assert "data folder not found" in _fails(
        ["--data", str(tmp_path / "nope"), "--out", out], capsys
    )
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    assert "has no image files" in _fails(["--data", str(empty), "--out", out], capsys)
    make_pair(tmp_path / "d", "a")
    make_pair(tmp_path / "d", "b")
    (tmp_path / "d" / "masks" / "b.png").unlink()
    assert "missing mask" in _fails(["--data", str(tmp_path / "d"), "--out", out], capsys)


def test_existing_output_and_empty_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "train.json").write_text("{}")
    assert "already holds a trained model" in _fails(["--out", str(out)], capsys)
    assert "nothing to resume" in _fails(["--resume", "--out", str(tmp_path / "x")], capsys)
    assert "no stored config" in _fails(["--resume", "--out", str(out)], capsys)


def test_list_archs(capsys) -> None:
    cli.main(["train", "--list-archs"])
    out = capsys.readouterr().out
    assert "sinet-lite" in out and "portraitnet" in out


def test_commands_module_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, harness.train.commands; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
