"""Run profiles: one set of sizes for a quick CPU pass, one for a GPU run that supports the claims.

Every notebook's ``parameters`` cell names a profile; any setting can still be overridden there.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

PROFILES: dict[str, dict] = {
    # CPU, each lesson in about a minute or two on 2 cores; results honest but not converged.
    "quick": {
        "brain_cases": 12, "cardiac_cases": 12, "test_fraction": 0.25, "seeds": 2,
        "widths": (8, 16, 32, 64), "batch_size": 16, "lr": 3e-3,
        "teacher_steps": 200, "student_steps": 150, "cardiac_steps": 200, "cardiac_batch_size": 8,
        "device": "cpu",
    },
    # GPU, enough cases, steps and seeds for the lessons' comparisons (the paper's widths).
    "full": {
        "brain_cases": 60, "cardiac_cases": 45, "test_fraction": 0.25, "seeds": 5,
        "widths": (16, 32, 64, 128), "batch_size": 32, "lr": 2e-3,
        "teacher_steps": 3000, "student_steps": 2000, "cardiac_steps": 2000, "cardiac_batch_size": 16,
        "device": "auto",
    },
}


def get_profile(name: str = "auto", **overrides) -> dict:
    """The settings of a profile, with overrides applied (``None`` values are ignored).

    Args:
        name: ``"quick"``, ``"full"``, or ``"auto"`` (full when a CUDA GPU is present).
        **overrides: settings to replace.

    Returns:
        A new dict with a ``"profile"`` key naming the resolved profile.

    Raises:
        ValueError: unknown profile or unknown setting.
    """
    if name == "auto":
        name = "full" if torch.cuda.is_available() else "quick"
    if name not in PROFILES:
        raise ValueError(f"profile must be 'quick', 'full' or 'auto', got {name!r}")
    settings = dict(PROFILES[name])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown profile settings {sorted(unknown)}; known: {sorted(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["profile"] = name
    return settings


def default_data_root() -> Path:
    """Where generated phantoms and downloads go: ``$PKD_LESSONS_DATA`` or ``~/pkd-lessons-data``."""
    return Path(os.environ.get("PKD_LESSONS_DATA", Path.home() / "pkd-lessons-data"))
