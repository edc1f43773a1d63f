"""Shared fixtures: small phantom sets, generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pkd_lessons.phantoms import make_phantoms

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _private_data_root(tmp_path_factory):
    """Keep anything a test generates out of the user's home."""
    os.environ["PKD_LESSONS_DATA"] = str(tmp_path_factory.mktemp("pkd-data"))


@pytest.fixture(scope="session")
def brain_set(tmp_path_factory) -> Path:
    """Four brain phantom cases (BraTS 2021 layout)."""
    return make_phantoms("brain", tmp_path_factory.mktemp("brain") / "set", cases=4, seed=0, progress=False)


@pytest.fixture(scope="session")
def cardiac_set(tmp_path_factory) -> Path:
    """Four cardiac phantom cases (MyoPS 2020 layout)."""
    return make_phantoms("cardiac", tmp_path_factory.mktemp("cardiac") / "set", cases=4, seed=0, progress=False)
