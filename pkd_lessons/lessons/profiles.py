"""Run profiles: a quick CPU pass, a lab pass for one classroom GPU (Colab's T4), the reference
results' longer runs, toy sizes for the tests, and a larger GPU run with the paper's widths.

Every notebook's ``parameters`` cell names a profile (``"auto"``: lab on a GPU, quick on a CPU); any
setting can still be overridden there.
"""

from __future__ import annotations

import os
from pathlib import Path

from pkd_lessons.methods.registry import DISTILLED_METHODS

#: Every student variant a profile can compare: the positive control (the baseline trained on the
#: clean truth) and every distilled method of the registry (:mod:`pkd_lessons.methods`).
ALL_METHODS = ("control", *DISTILLED_METHODS)

# CPU, 2 cores. The teacher trains on whole slices; students train on random 64x64 windows of the
# slices (the 2D counterpart of the reference's random crops), which is what buys steps on a CPU.
# The quick profile trains the teacher, then the baseline, plain KD, the regularized pixel-level KD
# and the paper's method over 3 seeds each (Lesson.runs: one single-threaded run per core), so that
# a laptop lab compares them itself; ckd, KD-Net and the positive control come from the reference
# results (pkd_lessons/lessons/reference_brain.json: 5 to 10 seeds x 20 held-out cases, trained
# longer).
QUICK: dict = {
    "brain_cases": 36,
    "cardiac_cases": 36,
    "split": (12, 4, 20),
    "seeds": 3,
    "widths": (8, 16, 32, 64),
    "batch_size": 16,
    "lr": 3e-3,
    "dropout": 0.0,
    "teacher_slice_crop": None,
    "slice_crop": (64, 64),
    "teacher_steps": 400,
    "student_steps": 400,
    "cardiac_steps": 150,
    "cardiac_batch_size": 16,
    "validations": 6,
    "device": "cpu",
    # bf16 where the CPU computes it in hardware (pkd_lessons.training.precision.cpu_bf16_native):
    # a student's inference 2-3x, its training step 1.2-1.7x faster; float32 elsewhere
    "amp": "native",
    # the distilled students (and "control") compared over seeds here; the rest: reference results
    "methods": ("kd", "rkd", "pkl"),
}

PROFILES: dict[str, dict] = {
    "quick": QUICK,
    # The same data, split and networks as quick, every distilled method and the control trained,
    # longer and over 5 seeds (the baseline and the paper's method over 10:
    # pkd_lessons.lessons.reference.EXTRA_SEEDS): run once by `pkd-lessons reference` and kept as data.
    "reference": {
        **QUICK,
        "seeds": 5,
        "teacher_steps": 1000,
        "student_steps": 700,
        "cardiac_steps": 600,
        "validations": 7,
        "device": "auto",
        "amp": "auto",  # as the reference results were trained (float32 on a CPU)
        "methods": ALL_METHODS,
    },
    # Every branch of every lesson at toy sizes: what the test suite runs to prove that the paths
    # only the full profile takes do not crash. Its numbers mean nothing.
    "tiny": {
        **QUICK,
        "brain_cases": 7,
        "cardiac_cases": 7,
        "split": (3, 1, 3),
        "seeds": 2,
        "widths": (4, 8, 16, 32),
        "batch_size": 4,
        "slice_crop": (32, 32),
        "teacher_steps": 6,
        "student_steps": 4,
        "cardiac_steps": 4,
        "cardiac_batch_size": 4,
        "validations": 2,
        "methods": ALL_METHODS,
    },
    # One 16 GB GPU for a course lab (Colab's T4, fp16 with a loss scaler): the quick profile's data
    # and split, the paper's widths, every method trained over 3 seeds (lesson 06 trains them itself
    # instead of showing the reference results), long enough for the validation curves to flatten.
    # Sized for a few minutes per lesson on a T4 from the CPU timings (T4 not measured; on an H200 the
    # brain teacher trains in 72 s: docs/timings.md).
    "lab": {
        **QUICK,
        "widths": (16, 32, 64, 128),
        "batch_size": 32,
        "teacher_steps": 1200,
        "student_steps": 1000,
        "cardiac_steps": 600,
        "cardiac_batch_size": 32,
        "validations": 8,
        "device": "auto",
        "methods": ALL_METHODS,
    },
    # GPU, the paper's widths, dropout 0.3 (the reference model function's default rate; the
    # reference's training script trains without dropout), whole slices, more cases, steps and seeds.
    "full": {
        "brain_cases": 80,
        "cardiac_cases": 60,
        "split": (40, 8, 32),
        "seeds": 5,
        "widths": (16, 32, 64, 128),
        "batch_size": 32,
        "lr": 2e-3,
        "dropout": 0.3,
        "teacher_slice_crop": None,
        "slice_crop": None,
        "teacher_steps": 4000,
        "student_steps": 3000,
        "cardiac_steps": 2000,
        "cardiac_batch_size": 16,
        "validations": 20,
        "device": "auto",
        "amp": "auto",
        "methods": ALL_METHODS,
    },
}


def get_profile(name: str = "auto", **overrides) -> dict:
    """The settings of a profile, with overrides applied (``None`` values are ignored).

    Args:
        name: ``"quick"`` (CPU), ``"lab"`` (one classroom GPU), ``"full"`` (a larger GPU),
            ``"reference"``, ``"tiny"`` (tests), or ``"auto"``: ``$PKD_LESSONS_PROFILE`` where it is
            set (a course's grading profile), else lab when a CUDA or Apple GPU is present, quick
            otherwise.
        **overrides: settings to replace.

    Returns:
        A new dict with a ``"profile"`` key naming the resolved profile.

    Raises:
        ValueError: unknown profile or unknown setting.
    """
    if name == "auto" and os.environ.get("PKD_LESSONS_PROFILE", "auto") != "auto":
        name = os.environ["PKD_LESSONS_PROFILE"]  # a course grades every submission in one profile
    if name == "auto":
        from pkd_lessons.training.device import pick_device  # torch: imported only when "auto" is resolved

        name = "quick" if pick_device("auto").type == "cpu" else "lab"
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join([*PROFILES, 'auto'])}, got {name!r}")
    settings = dict(PROFILES[name])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown profile settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["profile"] = name
    if settings["amp"] == "native":  # resolved here, so that a run's settings say what it computes in
        from pkd_lessons.training.device import pick_device
        from pkd_lessons.training.precision import resolve_amp

        settings["amp"] = resolve_amp("native", pick_device(settings["device"]).type)
    return settings


def default_data_root() -> Path:
    """Where generated phantoms and downloads go: ``$PKD_LESSONS_DATA`` or ``~/pkd-lessons-data``."""
    return Path(os.environ.get("PKD_LESSONS_DATA", Path.home() / "pkd-lessons-data"))
