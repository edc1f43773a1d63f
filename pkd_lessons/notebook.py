"""What every lesson notebook does first: resolve its parameters, find its data, save its results.

Example (the opening of a lesson)::

    lesson = Lesson.start(profile, data_root, output_dir)
    brain_dir = lesson.brain()           # phantoms generated on first use
    lesson.save_figure(fig, "modalities")
    lesson.write_summary("...markdown...")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from pkd_lessons.atomic import atomic_file
from pkd_lessons.phantoms import ensure_phantoms
from pkd_lessons.profiles import default_data_root, get_profile

DATA_SEED = 0  # the phantom sets every lesson shares


@dataclass
class Lesson:
    """A lesson's resolved settings and folders.

    Attributes:
        cfg: the profile's settings with the notebook's overrides.
        data_root: folder holding the phantom sets (or real data).
        out: folder for the lesson's figures and ``summary.md``.
    """

    cfg: dict
    data_root: Path
    out: Path

    @classmethod
    def start(cls, profile: str = "quick", data_root: str | os.PathLike | None = None,
              output_dir: str | os.PathLike = ".", **overrides) -> "Lesson":
        """Resolve the parameters cell: profile, data folder, output folder, overrides."""
        cfg = get_profile(profile, **overrides)
        root = Path(data_root) if data_root else default_data_root()
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        return cls(cfg, root, out)

    def brain(self) -> Path:
        """The brain phantom folder, generated on first use (BraTS 2021 layout)."""
        return ensure_phantoms("brain", self.data_root / "brain", self.cfg["brain_cases"], seed=DATA_SEED)

    def cardiac(self) -> Path:
        """The cardiac phantom folder, generated on first use (MyoPS 2020 layout)."""
        return ensure_phantoms("cardiac", self.data_root / "cardiac", self.cfg["cardiac_cases"], seed=DATA_SEED)

    def save_figure(self, fig: plt.Figure, name: str) -> Path:
        """Save a figure as ``OUT/name.png`` (atomically) and return its path."""
        path = self.out / f"{name}.png"
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=80, bbox_inches="tight")
        return path

    def write_summary(self, markdown: str) -> Path:
        """Write the lesson's ``summary.md``, collected by the lessons runner into ``SUMMARY.md``."""
        path = self.out / "summary.md"
        with atomic_file(path) as tmp:
            tmp.write_text(markdown.strip() + "\n")
        return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get three decimals below 10 and one above."""
    fmt = lambda v: (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}") if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
