"""The pkd-lessons command end to end on tiny phantoms."""

from __future__ import annotations

import json
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
    from dataclasses import fields

    from pkd_lessons.training.options import FROM_DATA, METHOD_DEFAULTS, field_help

    helps = {a.dest: a.help for a in parser._subparsers._group_actions[0].choices["train"]._actions}
    for f in fields(TrainConfig):
        if f.name in FROM_DATA or f.name == "method":
            continue
        # every other setting is an option; where the method decides, it is left to the method
        expected = None if f.name in METHOD_DEFAULTS else getattr(default, f.name)
        assert getattr(args, f.name) == expected, f.name
        assert helps[f.name].startswith(field_help()[f.name].rstrip(".")[:20]), f.name  # the field's own description
    assert args.test_fraction == TEST_FRACTION
    dims = parser.parse_args(["train", "--method", "protokd", "--data", "d", "--out", "o", "--dims", "3", "--no-flip"])
    assert (dims.spatial_dims, dims.flip) == (3, False)
    bench = parser.parse_args(["benchmark"])
    assert (bench.batch_size, bench.widths, bench.amp) == (default.batch_size, default.widths, default.amp)


def test_train_profile_faithful_starts_from_the_reference_settings():
    """`train --profile faithful` takes the reference code's settings; options given beside it win."""
    from pkd_lessons.cli import parse_args

    base = ["train", "--method", "pkl", "--data", "d", "--out", "o", "--profile", "faithful"]
    args = parse_args(base)
    assert (args.spatial_dims, args.crop, args.batch_size, args.optimizer, args.lr, args.steps) == (
        3,
        (80, 80, 80),
        4,
        "sgd",
        1e-3,
        60_000,
    )
    assert args.dropout == 0.0  # the reference trains without dropout (its model's default 0.3 is overridden)
    args = parse_args([*base, "--steps", "10", "--crop", "32", "--lr", "2e-3"])
    assert (args.steps, args.crop, args.lr, args.spatial_dims) == (10, (32, 32, 32), 2e-3, 3)
    assert parse_args(base[:-2]).spatial_dims == 2  # without the profile: the 2D defaults


def test_faithful_run_end_to_end_at_toy_sizes(tmp_path):
    """The faithful command path on the brain phantom: a 3D teacher, a 3D student distilled from it with
    SGD and the poly schedule, and sliding-window evaluation of both; sizes shrunk to seconds."""
    data = tmp_path / "brain"
    assert main(["phantoms", "brain", "--out", str(data), "--cases", "3", "--voxel-mm", "4", "--quiet"]) == 0
    toy = ["--profile", "faithful", "--steps", "2", "--widths", "4,8", "--crop", "16", "--batch-size", "2"]
    toy += ["--device", "cpu", "--quiet", "--test-fraction", "0.34"]
    teacher, student = tmp_path / "teacher", tmp_path / "pkl"
    assert main(["train", "--method", "teacher", "--data", str(data), "--out", str(teacher), *toy]) == 0
    assert main(["train", "--method", "pkl", "--data", str(data), "--out", str(student), "--teacher",
                 str(teacher / "checkpoint.pt"), *toy]) == 0  # fmt: skip
    config = json.loads((student / "history.json").read_text())["config"]
    assert (config["spatial_dims"], config["crop"], config["optimizer"], config["lr"], config["dropout"]) == (
        3,
        [16, 16, 16],
        "sgd",
        1e-3,
        0.0,  # the reference's training script feeds its dropout layers 0.0
    )
    assert (config["lr_step_every"], config["weight_decay"]) == (300, 1e-5)  # poly set once per epoch
    assert (config["flip"], config["pixel_weight"], config["image_weight"], config["temperature"]) == (
        False,
        0.5,
        0.5,
        10.0,
    )
    metrics = tmp_path / "metrics.json"
    checkpoints = [str(teacher / "checkpoint.pt"), str(student / "checkpoint.pt")]
    evaluate = ["evaluate", *checkpoints, "--data", str(data), "--out", str(metrics), "--device", "cpu", "--quiet"]
    assert main(evaluate) == 0
    records = json.loads(metrics.read_text())
    assert [r["method"] for r in records] == ["teacher", "pkl"]
    for r in records:  # the held-out case, scored by the sliding window
        (scores,) = r["cases"].values()
        assert set(scores) == {"WT", "TC", "ET"} and all(0 <= s["dice"] <= 1 for s in scores.values())
    # the 3D student's segmentations as files: every case, by the sliding window over its crop
    out = tmp_path / "segmentations"
    assert main(["predict", str(student / "checkpoint.pt"), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["field_of_view"] == {"spatial_dims": 3, "roi_size": [16, 16, 16], "window": None}
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"BraTS2021_{i:05d}.nii.gz" for i in range(3)]
