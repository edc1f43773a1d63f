"""Which code made a stored result: the commit, the package's and its main dependencies' versions."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path


def source_commit() -> str:
    """The git commit of the package's source tree, or ``"unknown"`` outside a checkout.

    Returns:
        The commit's hash, with ``+uncommitted changes`` when tracked files differ from it; in a copy
        of a clean checkout without its ``.git`` (a machine lent for training), ``$PKD_LESSONS_COMMIT``.
    """
    if os.environ.get("PKD_LESSONS_COMMIT"):
        return os.environ["PKD_LESSONS_COMMIT"]
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def versions() -> dict[str, str]:
    """The versions of the package, Python, PyTorch, MONAI and NumPy in use."""
    import monai
    import numpy
    import torch

    from pkd_lessons import __version__

    return {
        "pkd_lessons": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
    }


def provenance() -> dict:
    """``{"commit", "versions", "date"}`` of a result made now (informative: not part of a run's identity)."""
    return {"commit": source_commit(), "versions": versions(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
