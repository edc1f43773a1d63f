"""The pkd-lessons command end to end on tiny phantoms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pkd_lessons.cli import build_parser, main


def test_phantoms_then_check(tmp_path, capsys):
    out = tmp_path / "brain"
    assert main(["phantoms", "brain", "--out", str(out), "--cases", "2", "--seed", "3", "--quiet"]) == 0
    assert (out / "BraTS2021_00001" / "BraTS2021_00001_seg_clean.nii.gz").is_file()
    assert main(["check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 case(s), layout brats" in text and "all cases readable" in text
    assert main(["phantoms", "brain", "--out", str(out), "--cases", "1", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cardiac_phantoms(tmp_path):
    out = tmp_path / "heart"
    assert main(["phantoms", "cardiac", "--out", str(out), "--cases", "2", "--quiet"]) == 0
    assert len(list((out / "train25").glob("*_C0.nii.gz"))) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["phantoms", "lung", "--out", "x"],
        ["phantoms", "brain", "--out", "x", "--cases", "0"],
        ["phantoms", "brain"],
        ["lessons", "--profile", "huge"],
        ["train", "--method", "baseline", "--data", "d", "--out", "o", "--widths", "a,b"],
        ["train", "--method", "wizard", "--data", "d", "--out", "o"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_every_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sp in sub.choices.items():
        for action in sp._actions:
            assert action.help, f"{name}: option {action.option_strings or action.dest} has no help"


def test_console_script_installed():
    script = Path(sys.executable).parent / "pkd-lessons"
    assert script.is_file(), "install the package (pip install -e .) so that the command exists"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("pkd-lessons ")


def test_train_options_default_to_the_configs_own_values():
    """One home for each default: the train command's options are TrainConfig's."""
    from pkd_lessons.training.config import TEST_FRACTION, TrainConfig

    parser = build_parser()
    args = parser.parse_args(["train", "--method", "baseline", "--data", "d", "--out", "o"])
    default = TrainConfig()
    for option, field in [
        ("steps", "steps"),
        ("batch_size", "batch_size"),
        ("seed", "seed"),
        ("dims", "spatial_dims"),
        ("widths", "widths"),
        ("lr", "lr"),
        ("optimizer", "optimizer"),
        ("temperature", "temperature"),
        ("amp", "amp"),
        ("intensity", "intensity"),
        ("affine", "affine"),
        ("placement", "placement"),
    ]:
        assert getattr(args, option) == getattr(default, field), option
    assert args.test_fraction == TEST_FRACTION
    bench = parser.parse_args(["benchmark"])
    assert (bench.batch_size, bench.widths, bench.amp) == (default.batch_size, default.widths, default.amp)
