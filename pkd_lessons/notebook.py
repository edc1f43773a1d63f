"""What every lesson notebook does: resolve its parameters, find its data, train or reuse its runs.

Lessons share trained networks: lesson 02 trains the teacher, 03 the baseline students, and so on,
each stored under ``DATA_ROOT/runs/PROFILE/DATASET/METHOD-sSEED/``. A lesson opened on its own
trains what it needs; a lesson run after its predecessors reuses their runs (same settings only).

Example (the opening of a lesson)::

    lesson = Lesson.start(profile, data_root, output_dir)
    teacher = lesson.run("teacher")                       # trained once, then reused
    students = [lesson.run("pkl", seed=s) for s in lesson.seeds]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from pkd_lessons.atomic import atomic_file
from pkd_lessons.config import TrainConfig
from pkd_lessons.data import find_cases, load_cases, split_cases
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.device import pick_device
from pkd_lessons.evaluate import evaluate
from pkd_lessons.phantoms import ensure_phantoms
from pkd_lessons.profiles import default_data_root, get_profile

DATA_SEED = 0   # the phantom sets every lesson shares
SPLIT_SEED = 0  # the train/test split every lesson shares
STUDENT_MODALITY = {"brain": "t1ce", "cardiac": "lge"}
MIN_CASES = 3  # fewer held-out cases give no case interval worth reading


@dataclass
class Run:
    """A trained network of a lesson and its scores on the held-out cases.

    Attributes:
        name: ``METHOD-sSEED``.
        folder: where its files are.
        config: its training settings.
        metrics: per-case Dice and HD95 (see :func:`~pkd_lessons.evaluate.evaluate`).
        history: loss terms per step.
        info: throughput, device, precision, seconds.
    """

    name: str
    folder: Path
    config: TrainConfig
    metrics: dict
    history: dict
    info: dict = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.folder / "checkpoint.pt"


@dataclass
class Lesson:
    """A lesson's resolved settings, folders, data and runs.

    Attributes:
        cfg: the profile's settings with the notebook's overrides.
        data_root: folder holding the phantom sets, the shared runs (or real data).
        out: folder for the lesson's figures and ``summary.md``.
    """

    cfg: dict
    data_root: Path
    out: Path
    _splits: dict = field(default_factory=dict, repr=False)
    _folders: dict = field(default_factory=dict, repr=False)
    _modality: dict = field(default_factory=lambda: dict(STUDENT_MODALITY), repr=False)

    @classmethod
    def start(cls, profile: str = "quick", data_root: str | os.PathLike | None = None,
              output_dir: str | os.PathLike = ".", **overrides) -> "Lesson":
        """Resolve the parameters cell: profile, data folder, output folder, overrides."""
        cfg = get_profile(profile, **overrides)
        root = Path(data_root) if data_root else default_data_root()
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        return cls(cfg, root, out)

    # -- data ------------------------------------------------------------------------------------
    @property
    def seeds(self) -> list[int]:
        """The training seeds of the profile."""
        return list(range(self.cfg["seeds"]))

    def brain(self) -> Path:
        """The brain phantom folder, generated on first use (BraTS 2021 layout)."""
        return ensure_phantoms("brain", self.data_root / "brain", self.cfg["brain_cases"], seed=DATA_SEED)

    def cardiac(self) -> Path:
        """The cardiac phantom folder, generated on first use (MyoPS 2020 layout)."""
        return ensure_phantoms("cardiac", self.data_root / "cardiac", self.cfg["cardiac_cases"], seed=DATA_SEED)

    def add_dataset(self, name: str, folder: str | os.PathLike, max_cases: int | None = None,
                    student_modality: str | None = None) -> list:
        """Register a data folder (e.g. real BraTS) under ``name`` for :meth:`split` and :meth:`run`.

        Args:
            name: dataset name used in run folders.
            folder: the data folder, in any layout the loader reads.
            max_cases: use only the first cases (sorted by identifier), to keep a lesson short.
            student_modality: the students' modality (default t1ce for brain, lge for heart).

        Returns:
            The cases found.
        """
        cases = find_cases(folder)[:max_cases]
        self._folders[name] = cases
        brain = cases[0].layout != "myops"
        self._modality[name] = student_modality or ("t1ce" if brain else "lge")
        return cases

    def split(self, dataset: str = "brain") -> tuple[list[CaseVolume], list[CaseVolume]]:
        """Training and held-out test cases of a data set (the same split in every lesson)."""
        if dataset not in self._splits:
            if dataset in self._folders:
                cases = self._folders[dataset]
            else:
                cases = find_cases(self.brain() if dataset == "brain" else self.cardiac())
            f = self.cfg["test_fraction"]
            train_cases, test_cases = split_cases(cases, (1 - f, f), seed=SPLIT_SEED)
            self._splits[dataset] = (load_cases(train_cases, progress=False), load_cases(test_cases, progress=False))
        return self._splits[dataset]

    # -- runs ------------------------------------------------------------------------------------
    def config(self, method: str, seed: int = 0, dataset: str = "brain", **overrides) -> TrainConfig:
        """The training settings of a lesson run under this profile."""
        train, _ = self.split(dataset)
        v = train[0]
        steps_key = "teacher_steps" if method == "teacher" else "student_steps"
        batch_key = "batch_size"
        if dataset == "cardiac":
            steps_key, batch_key = "cardiac_steps", "cardiac_batch_size"
        settings = {
            "method": method, "modalities": v.modalities, "modality": self._modality[dataset],
            "num_classes": v.convention.num_classes, "widths": tuple(self.cfg["widths"]),
            "steps": self.cfg[steps_key], "batch_size": self.cfg[batch_key], "lr": self.cfg["lr"], "seed": seed,
        }
        settings.update(overrides)
        return TrainConfig(**settings)

    def run(self, method: str, seed: int = 0, dataset: str = "brain", progress: bool = True, **overrides) -> Run:
        """Train (or reuse) one run and score it on the held-out cases.

        Args:
            method: ``teacher``, ``baseline``, ``kd``, ``rkd``, ``ckd``, ``pkl`` or ``kdnet``.
            seed: training seed.
            dataset: ``"brain"`` or ``"cardiac"``.
            progress: progress bars.
            **overrides: training settings to change (a changed setting is a different run).

        Returns:
            The :class:`Run`.
        """
        from pkd_lessons.train import load_model, train  # heavy; imported when a lesson trains

        cfg = self.config(method, seed, dataset, **overrides)
        tag = "" if not overrides else "-" + "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
        name = f"{method}-s{seed}{tag}"
        folder = self.data_root / "runs" / self.cfg["profile"] / dataset / name
        record = folder / "run.json"
        device = pick_device(self.cfg["device"])
        if record.is_file():
            saved = json.loads(record.read_text())
            if saved["config"] == cfg.to_dict() and (folder / "checkpoint.pt").is_file():
                return Run(name, folder, cfg, saved["metrics"], saved["history"], saved["info"])
        teacher = None
        if cfg.needs_teacher:
            teacher = self.run("teacher", 0, dataset, progress=progress).checkpoint
        train_volumes, test_volumes = self.split(dataset)
        start = time.perf_counter()
        trainer = train(cfg, train_volumes, teacher, out=folder, device=str(device), progress=progress)
        seconds = time.perf_counter() - start
        model, _, _ = load_model(folder / "checkpoint.pt", device)
        metrics = evaluate(model, cfg, test_volumes, device, progress=False, name=name,
                           precision=trainer.precision)
        info = {"samples_per_second": trainer.samples_per_second, "device": str(trainer.device),
                "precision": trainer.precision.name, "seconds": seconds}
        with atomic_file(record) as tmp:
            tmp.write_text(json.dumps({"config": cfg.to_dict(), "metrics": metrics,
                                       "history": dict(trainer.history), "info": info}))
        return Run(name, folder, cfg, metrics, dict(trainer.history), info)

    def model(self, run: Run):
        """Load a run's network (eval mode, on the lesson's device)."""
        from pkd_lessons.train import load_model

        return load_model(run.checkpoint, pick_device(self.cfg["device"]))[0]

    def heads(self, run: Run):
        """A run's trained projection heads (``"student"``, ``"teacher"``), or fresh ones if it has none."""
        import torch
        from torch import nn

        from pkd_lessons.checkpoint import load_checkpoint
        from pkd_lessons.models import ProjectionHead

        torch.manual_seed(run.config.seed)
        heads = nn.ModuleDict({"student": ProjectionHead(run.config.widths[0]),
                               "teacher": ProjectionHead(run.config.widths[0])})
        state = load_checkpoint(run.checkpoint)["heads"]
        if state:
            heads.load_state_dict(state)
        return heads.eval()

    def predict(self, run: Run, volume: CaseVolume):
        """A run's class map of one case."""
        from pkd_lessons.evaluate import predict_volume

        return predict_volume(self.model(run), volume, run.config.input_modalities, run.config.spatial_dims,
                              pick_device(self.cfg["device"]), roi_size=run.config.crop)

    # -- outputs ---------------------------------------------------------------------------------
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


def verdicts(records: list[dict], reference: str = "baseline", scale: float = 100.0,
             unit: str = "Dice points") -> str:
    """Plain-language reading of a comparison, one line per method and region.

    Each difference from ``reference`` gets two 95 % intervals: over held-out cases (each case's
    score averaged over seeds) and over seeds (seed *s* against seed *s*; with two seeds this
    interval is honestly very wide). The case interval counts from :data:`MIN_CASES` cases, the
    seed interval from two seeds. A difference is called a gain or a loss only when every counted
    interval excludes zero: the case interval alone ignores the seed-to-seed noise.

    Args:
        records: metrics records of several methods and seeds.
        reference: the method compared against.
        scale: 100 for Dice in points.
        unit: unit named in the lines.
    """
    from pkd_lessons.results import summarize

    by_seeds = {(r["method"], r["region"]): r for r in summarize(records, baseline=reference, over="seeds")}
    lines = []
    for r in summarize(records, baseline=reference):
        if r["method"] == reference:
            continue
        s = by_seeds[(r["method"], r["region"])]
        intervals = [(name, row["ci_low"], row["ci_high"]) for name, row, least in
                     (("cases", r, MIN_CASES), ("seeds", s, 2)) if row["n"] >= least]
        text = "; ".join(f"over {name} [{lo * scale:+.1f}, {hi * scale:+.1f}]" for name, lo, hi in intervals)
        if not intervals:
            reading = "too few paired cases and seeds for any conclusion"
        elif all(lo > 0 for _, lo, _ in intervals):
            reading = f"better than the {reference}"
        elif all(hi < 0 for _, _, hi in intervals):
            reading = f"worse than the {reference}"
        else:
            reading = "within the noise of this experiment (an interval includes 0)"
        if len(intervals) == 1:
            reading += f" (judged over {intervals[0][0]} only)"
        lines.append(f"- {r['method']}, {r['region']}: {r['diff'] * scale:+.1f} {unit}, {text}: {reading}")
    return "\n".join(lines)
