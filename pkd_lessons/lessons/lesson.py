"""What every lesson notebook does: resolve its parameters, find its data, train or reuse its runs.

Lessons share trained networks: lesson 02 trains the teacher, 03 the baseline students, and so on,
each stored under ``RUNS_DIR/PROFILE/DATASET/METHOD-sSEED/`` (``RUNS_DIR``: the ``runs_dir`` parameter,
else ``$PKD_LESSONS_RUNS``, else ``DATA_ROOT/runs``; a folder of its own, so that the runs can live on
a mounted drive while the phantoms are regenerated). A lesson opened on its own trains what it needs,
or takes the pretrained teacher shipped with the package (:mod:`pkd_lessons.lessons.pretrained`); a
lesson run after its predecessors reuses their runs when the same settings, data, teacher and code
would make them again (:mod:`pkd_lessons.lessons.store`). A run being trained is checkpointed every
few minutes and resumed where it stopped when it is asked for again after an interruption (a
disconnected Colab session, a restarted kernel). Each run says in one line what is done: reusing it,
or training it and about how long that takes on this device.

Example (the opening of a lesson)::

    lesson = Lesson.start(profile, data_root, output_dir)
    teacher = lesson.run("teacher")                       # trained once, then reused
    students = [lesson.run("pkl", seed=s) for s in lesson.seeds]
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib.pyplot as plt

from pkd_lessons.atomic import atomic_file
from pkd_lessons.data import find_cases, load_cases, split_cases
from pkd_lessons.data.layouts import STUDENT_MODALITY
from pkd_lessons.data.layouts import student_modality as default_student_modality
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.evaluation.prediction import evaluate
from pkd_lessons.lessons.profiles import default_data_root, get_profile
from pkd_lessons.lessons.provenance import provenance
from pkd_lessons.lessons.store import reusable, run_lock, split_fingerprint, write_record
from pkd_lessons.phantoms import ensure_phantoms
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.device import pick_device

DATA_SEED = 0  # the phantom sets every lesson shares
SPLIT_SEED = 0  # the train/test split every lesson shares
#: Seconds between the checkpoints of a run being trained: what an interruption can lose at most.
CHECKPOINT_SECONDS = 120.0
#: Settings only a student uses: a teacher run ignores them (they do not make it another run), and a
#: distilled run's teacher takes every other override of the run (a 3D student of the faithful preset
#: learns from a 3D teacher of the same widths, crops and schedule).
STUDENT_ONLY = ("modality", "temperature", "pixel_weight", "image_weight", "kd_t2", "margin", "cache_teacher")


def _tag(value) -> str:
    """A setting's value in a run folder's name: sizes as ``24x24x16``, no spaces."""
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else str(value).replace(" ", "")


@dataclass
class Run:
    """A trained network of a lesson and its scores on the held-out cases.

    Attributes:
        name: ``METHOD-sSEED``.
        folder: where its files are.
        config: its training settings.
        metrics: per-case Dice and HD95 (see :func:`~pkd_lessons.evaluation.prediction.evaluate`).
        history: loss terms per step.
        info: throughput, device, precision, seconds (wall clock) and cpu_seconds (the CPU time of
            the process that trained it).
        identity: its settings, data, teacher and code fingerprints (:mod:`pkd_lessons.lessons.store`).
        checkpoint_sha256: the SHA-256 of the checkpoint its record describes.
        reused: True when it was found stored rather than trained by this call.
    """

    name: str
    folder: Path
    config: TrainConfig
    metrics: dict
    history: dict
    info: dict = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    checkpoint_sha256: str = ""
    reused: bool = False

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file."""
        return self.folder / "checkpoint.pt"


@dataclass
class Lesson:
    """A lesson's resolved settings, folders, data and runs.

    Attributes:
        settings: the profile's settings (a dict, see :mod:`pkd_lessons.lessons.profiles`) with the
            notebook's overrides; one run's :class:`~pkd_lessons.training.config.TrainConfig` is
            built from them by :meth:`config`.
        data_root: folder holding the phantom sets (or real data).
        out: folder for the lesson's figures and ``summary.md``.
        runs_dir: folder of the trained runs (None: ``$PKD_LESSONS_RUNS``, else ``data_root/runs``).
    """

    settings: dict
    data_root: Path
    out: Path
    runs_dir: Path | None = None
    _splits: dict = field(default_factory=dict, repr=False)
    _folders: dict = field(default_factory=dict, repr=False)
    _fingerprints: dict = field(default_factory=dict, repr=False)
    _predictors: dict = field(default_factory=dict, repr=False)
    _modality: dict = field(default_factory=lambda: dict(STUDENT_MODALITY), repr=False)

    @classmethod
    def start(
        cls,
        profile: str = "auto",
        data_root: str | os.PathLike | None = None,
        output_dir: str | os.PathLike = ".",
        runs_dir: str | os.PathLike | None = None,
        **overrides,
    ) -> Lesson:
        """Resolve the parameters cell: profile, data folder, output folder, runs folder, overrides.

        Raises:
            ValueError: a setting that cannot work (fewer than one seed, an empty group of the split,
                fewer phantom cases than the split needs), named with what it must be; checked here,
                before any data is generated or any network trained.
            PermissionError: an output folder that cannot be written.
        """
        settings = get_profile(profile, **overrides)
        check_settings(settings)
        root = Path(data_root) if data_root else default_data_root()
        out = Path(output_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".write-check-{os.getpid()}-{threading.get_ident()}"  # one per caller: no race
            with atomic_file(probe) as tmp:
                tmp.write_text("")
            probe.unlink()
        except OSError as err:
            raise PermissionError(
                f"output_dir {str(out)!r}: cannot write the lesson's figures there ({err.strerror or err}); "
                "choose a folder you can write"
            ) from None
        return cls(settings, root, out, Path(runs_dir) if runs_dir else None)

    @property
    def runs_root(self) -> Path:
        """The folder of the trained runs: ``runs_dir``, else ``$PKD_LESSONS_RUNS``, else ``DATA_ROOT/runs``."""
        if self.runs_dir is not None:
            return self.runs_dir
        return Path(os.environ["PKD_LESSONS_RUNS"]) if os.environ.get("PKD_LESSONS_RUNS") else self.data_root / "runs"

    # -- data ------------------------------------------------------------------------------------
    @property
    def seeds(self) -> list[int]:
        """The training seeds of the profile."""
        return list(range(self.settings["seeds"]))

    def brain(self) -> Path:
        """The brain phantom folder, generated on first use (BraTS 2021 layout)."""
        return ensure_phantoms(
            "brain", self.data_root / "brain", self.settings["brain_cases"], seed=DATA_SEED, progress=progress_bars()
        )

    def cardiac(self) -> Path:
        """The cardiac phantom folder, generated on first use (MyoPS 2020 layout)."""
        return ensure_phantoms(
            "cardiac",
            self.data_root / "cardiac",
            self.settings["cardiac_cases"],
            seed=DATA_SEED,
            progress=progress_bars(),
        )

    def add_dataset(
        self, name: str, folder: str | os.PathLike, max_cases: int | None = None, student_modality: str | None = None
    ) -> list:
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
        self._modality[name] = student_modality or default_student_modality(cases[0].modalities)
        return cases

    def split(self, dataset: str = "brain") -> tuple[list[CaseVolume], list[CaseVolume]]:
        """Training and held-out test cases of a data set (the same split in every lesson).

        The profile's ``split`` gives the relative sizes of the training, validation and test groups
        (e.g. 12 / 4 / 20 cases); see :meth:`validation` for the middle one.
        """
        if dataset not in self._splits:
            if dataset in self._folders:
                cases = self._folders[dataset]
            else:
                cases = find_cases(self.brain() if dataset == "brain" else self.cardiac())
            groups = split_cases(cases, self.settings["split"], seed=SPLIT_SEED)
            self._splits[dataset] = tuple(load_cases(g, progress=False) for g in groups)
        train, _, test = self._splits[dataset]
        return train, test

    def validation(self, dataset: str = "brain") -> list[CaseVolume]:
        """The validation cases of a data set: scored during training for the curves, never trained
        on, and not among the test cases that the lessons' comparisons use."""
        self.split(dataset)
        return self._splits[dataset][1]

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
            "method": method,
            "modalities": v.modalities,
            "modality": self._modality[dataset],
            "num_classes": v.convention.num_classes,
            "widths": tuple(self.settings["widths"]),
            "steps": self.settings[steps_key],
            "batch_size": self.settings[batch_key],
            "lr": self.settings["lr"],
            "seed": seed,
            "slice_crop": (
                None
                if dataset == "cardiac"
                else self.settings["teacher_slice_crop"]
                if method == "teacher"
                else self.settings["slice_crop"]
            ),
            "dropout": self.settings["dropout"],
            "amp": self.settings["amp"],
        }
        settings["validate_every"] = validation_interval(settings["steps"], self.settings["validations"])
        settings.update(overrides)
        return TrainConfig(**settings)

    def fingerprint(self, dataset: str = "brain") -> str:
        """The fingerprint of a data set's split as the lessons use it (training, validation and
        test cases, all their bytes; :func:`~pkd_lessons.lessons.store.split_fingerprint`)."""
        if dataset not in self._fingerprints:
            self.split(dataset)
            self._fingerprints[dataset] = split_fingerprint(self._splits[dataset])
        return self._fingerprints[dataset]

    def identity(self, cfg: TrainConfig, dataset: str = "brain", teacher: Run | None = None) -> dict:
        """Everything that determines a run (see :mod:`pkd_lessons.lessons.store`).

        Args:
            cfg: its settings.
            dataset: its data set.
            teacher: the run it is distilled from (distilled methods).

        Returns:
            ``{"config", "data", "teacher", "code"}``.
        """
        from pkd_lessons.training.behaviour import behaviour_fingerprint  # torch: when a lesson trains

        train, _ = self.split(dataset)
        return {
            "config": cfg.to_dict(),
            "data": self.fingerprint(dataset),
            "teacher": teacher.checkpoint_sha256 if teacher is not None else None,
            "code": behaviour_fingerprint(cfg, train[0].convention),
        }

    def run(
        self,
        method: str,
        seed: int = 0,
        dataset: str = "brain",
        progress: bool | None = None,
        reuse_only: bool = False,
        pretrained: bool = True,
        say: bool | None = True,
        **overrides,
    ) -> Run | None:
        """Train (or reuse) one run and score it on the held-out cases.

        A stored run is reused only when its settings, data, teacher and the code's behaviour are
        those of the run asked for and its checkpoint is the one its record describes
        (:mod:`pkd_lessons.lessons.store`); otherwise one line says which file and why, and the run
        is trained again. A teacher with no stored run is taken from the pretrained teachers shipped
        with the package where one was made for the same settings, data and code
        (:mod:`pkd_lessons.lessons.pretrained`). A run being trained writes a checkpoint every
        :data:`CHECKPOINT_SECONDS`; asked for again after an interruption, it resumes from it. Two
        lessons asking for the same run take turns.

        Args:
            method: a method of :mod:`pkd_lessons.methods` (``teacher``, ``baseline``, ``pkl``, ...).
            seed: training seed.
            dataset: ``"brain"`` or ``"cardiac"``.
            progress: progress bars (None: :func:`progress_bars`).
            reuse_only: return the stored run, or None where there is none to reuse (nothing is
                trained, but a distilled run's teacher).
            pretrained: a teacher may be the shipped pretrained one (False: a teacher trained here;
                a pretrained one stored earlier is then trained again).
            say: print one line on what is done (reusing the run, taking the pretrained teacher, or
                training it and for about how long); None: only when it is not reused.
            **overrides: training settings to change (a changed setting is a different run); a
                distilled run's teacher takes them too, but for :data:`STUDENT_ONLY`.

        Returns:
            The :class:`Run` (None only with ``reuse_only``).
        """
        from pkd_lessons.lessons.pretrained import install_pretrained
        from pkd_lessons.lessons.store import clear_partial, partial_identity, write_partial
        from pkd_lessons.training.trainer import load_model, train  # heavy; imported when a lesson trains

        progress = progress_bars() if progress is None else progress
        if method == "teacher":
            overrides = {k: v for k, v in overrides.items() if k not in STUDENT_ONLY}
        cfg = self.config(method, seed, dataset, **overrides)
        tag = "" if not overrides else "-" + "-".join(f"{k}{_tag(v)}" for k, v in sorted(overrides.items()))
        name = f"{method}-s{seed}{tag}"
        folder = self.runs_root / self.settings["profile"] / dataset / name
        teacher = None
        if cfg.needs_teacher:  # its teacher: the same network shape, data and schedule as this run
            teacher = self.run("teacher", 0, dataset, progress=progress, say=None, **teacher_overrides(cfg, overrides))
        identity = self.identity(cfg, dataset, teacher)
        if reuse_only:
            saved, _ = reusable(folder, identity)
            return None if saved is None else _stored_run(name, folder, cfg, identity, saved)
        with run_lock(folder):
            saved, why = reusable(folder, identity)
            if saved is not None and saved.get("pretrained") and not pretrained:
                saved, why = None, f"{folder}: holds the pretrained teacher; this lesson trains its own"
            installed = None
            if saved is None and method == "teacher" and pretrained:  # also in place of a stale run
                saved = installed = install_pretrained(self.settings["profile"], dataset, name, folder, identity)
            if saved is not None:
                if say or (say is None and installed is not None):
                    print(_reuse_line(name, folder, saved, installed is not None))
                return _stored_run(name, folder, cfg, identity, saved)
            # one line: why it is trained (where a stored run could not be reused) and for how long
            announce = f"{why}; training {name} again" if why else f"training {name}"
            if say is False and why:
                print(announce)
            device = pick_device(self.settings["device"])
            train_volumes, test_volumes = self.split(dataset)
            resume = partial_identity(folder) == identity and (folder / "checkpoint.pt").is_file()
            if not resume:
                write_partial(folder, identity)
            start, cpu_start = time.perf_counter(), time.process_time()
            trainer = train(
                cfg,
                train_volumes,
                teacher.checkpoint if teacher is not None else None,
                out=folder,
                device=str(device),
                progress=progress,
                validation=self.validation(dataset),
                resume=resume,
                checkpoint_seconds=CHECKPOINT_SECONDS,
                announce=announce if say is not False else None,
            )
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            model, _, _ = load_model(folder / "checkpoint.pt", device)
            metrics = evaluate(model, cfg, test_volumes, device, progress=False, name=name, precision=trainer.precision)
            info = {
                "samples_per_second": trainer.samples_per_second,
                "device": str(trainer.device),
                "precision": trainer.precision.name,
                "seconds": seconds,
                # the work the run cost, whatever shared the CPU with it (Lesson.runs trains several at once)
                "cpu_seconds": cpu_seconds,
            }
            if trainer.resumed_from is not None:  # seconds and cpu_seconds: this call's part of the run
                info["resumed_at_step"] = trainer.resumed_from[1]
            record = write_record(
                folder,
                identity,
                config=cfg.to_dict(),
                metrics=metrics,
                history=dict(trainer.history),
                info=info,
                provenance=provenance(),
            )
            clear_partial(folder)
        return Run(name, folder, cfg, metrics, dict(trainer.history), info, identity, record["checkpoint_sha256"])

    def runs(
        self, methods: Sequence[str], seeds: Sequence[int] | None = None, dataset: str = "brain", **overrides
    ) -> dict[str, list[Run]]:
        """Train (or reuse) every method over the seeds, several runs at a time on a CPU.

        The runs of ``{m: [self.run(m, seed=s, ...) for s in seeds] for m in methods}`` (the same
        settings and identities; the last bits of a result depend on the thread count). On a CPU
        with more than one core, the runs to train are spread over one process per core (one more
        where that trains them all in one round, :func:`pool_size`), each with a single thread:
        this network's small convolutions use two threads poorly, so two single-threaded runs side
        by side finish sooner than the same two one after the other with two threads each
        (``docs/benchmarks/cpu_speedups.py``, 2 cores: 1.2-1.5x over repeated runs). A distilled
        run's teacher is trained (or found) first. One line per run says what was done.

        Args:
            methods: method names (see :meth:`run`).
            seeds: training seeds (default: the profile's, :attr:`seeds`).
            dataset: the data set.
            **overrides: training settings, as in :meth:`run`.

        Returns:
            method -> its runs, in the order of ``seeds``.
        """
        seeds = self.seeds if seeds is None else list(seeds)
        jobs = [(m, s) for m in methods for s in seeds]
        self.split(dataset)  # the phantoms made once, before any worker reads them
        for m in methods:  # the teachers first (the paper's, or ProtoKD's early fusion), once each
            cfg = self.config(m, 0, dataset, **overrides)
            if cfg.needs_teacher:  # a line only where the teacher is trained or taken from the package
                self.run("teacher", 0, dataset, say=None, **teacher_overrides(cfg, overrides))
        done: dict[tuple[str, int], Run] = {}
        for job in jobs:
            stored = self.run(*job, dataset, reuse_only=True, **overrides)
            if stored is not None:
                done[job] = stored
        todo = [job for job in jobs if job not in done]
        if done:
            print(
                f"reusing {len(done)} of {len(jobs)} runs ({', '.join(r.name for r in done.values())}), "
                f"trained earlier with these settings, data and code in {self.runs_root / self.settings['profile']}"
            )
        device = pick_device(self.settings["device"])
        workers = pool_size(len(todo), os.cpu_count() or 1) if device.type == "cpu" else 1
        first = self.config(todo[0][0], 0, dataset, **overrides) if todo else None
        if first is not None and first.steps * first.batch_size < POOL_MIN_SAMPLES:
            workers = 1  # toy runs: starting the processes would cost more than it saves
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            print(f"training {len(todo)} runs, {workers} at a time on {os.cpu_count()} CPU cores:")
            context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
            # the workers get the settings and folders, not the loaded cases (each loads them once)
            light = replace(self, _splits={}, _fingerprints={}, _predictors={})
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
                futures = {job: pool.submit(_run_in_worker, light, *job, dataset, overrides) for job in todo}
                for job, future in futures.items():
                    done[job] = future.result()
                    _say(done[job])
        else:
            for job in todo:
                done[job] = self.run(*job, dataset, **overrides)
                _say(done[job])
        return {m: [done[m, s] for s in seeds] for m in methods}

    def model(self, run: Run):
        """Load a run's network (eval mode, on the lesson's device)."""
        from pkd_lessons.training.trainer import load_model

        return load_model(run.checkpoint, pick_device(self.settings["device"]))[0]

    def heads(self, run: Run):
        """A run's trained projection heads (``"student"``, ``"teacher"``), or fresh ones if it has none."""
        import torch

        from pkd_lessons.models import projection_heads
        from pkd_lessons.training.checkpoint import load_checkpoint
        from pkd_lessons.training.trainer import Trainer

        torch.manual_seed(run.config.seed)
        train, _ = self.split(run.folder.parent.name)
        heads = projection_heads(run.config.widths[0], Trainer.input_size(run.config, train))
        state = load_checkpoint(run.checkpoint)["heads"]
        if state:
            heads.load_state_dict(state)
        return heads.eval()

    def embeddings(
        self,
        run: Run,
        teacher: Run,
        heads,
        volumes: list[CaseVolume] | None = None,
        slices_per_case: int = 4,
        windows: str = "tumour",
        seed: int = 0,
    ):
        """Student and teacher embeddings of windows cut from the slices of each case.

        The heads embed windows of their training size (``heads["student"].input_size``).

        Args:
            run: the student run whose network gives the student embeddings.
            teacher: the teacher run.
            heads: the two projection heads (:meth:`heads`).
            volumes: cases to embed (default: the held-out test cases).
            slices_per_case: windows per case.
            windows: ``"tumour"``: the tumour's largest slices, each window centred on the tumour
                (images that look alike); ``"random"``: slices with brain and window positions drawn
                at random, as training draws them.
            seed: seed of the random windows.

        Returns:
            ``(student, teacher)`` arrays of shape ``(N, 16)``.

        Raises:
            ValueError: an unknown ``windows``.
        """
        import numpy as np
        import torch

        if windows not in ("tumour", "random"):
            raise ValueError(f"windows must be 'tumour' or 'random', got {windows!r}")
        rng = np.random.default_rng(seed)
        s_model, t_model = self.model(run), self.model(teacher)
        dev = next(s_model.parameters()).device
        h, w = heads["student"].input_size
        channel = run.config.modalities.index(run.config.modality)
        s_emb, t_emb = [], []
        for v in volumes if volumes is not None else self.split(run.folder.parent.name)[1]:
            if windows == "tumour":
                area = (v.truth > 0).sum((0, 1))
                chosen = np.argsort(area)[::-1][:slices_per_case]
            else:
                brain = np.flatnonzero(v.mask.any((0, 1)))
                chosen = rng.choice(brain, size=min(slices_per_case, len(brain)), replace=False)
            for z in chosen:
                image = v.image[:, :, :, z]
                image = np.pad(image, ((0, 0), (0, max(0, h - image.shape[1])), (0, max(0, w - image.shape[2]))))
                if windows == "tumour":
                    tumour = np.argwhere(
                        np.pad(
                            v.truth[:, :, z] > 0, ((0, image.shape[1] - v.shape[0]), (0, image.shape[2] - v.shape[1]))
                        )
                    )
                    cy, cx = tumour.mean(0).astype(int) if len(tumour) else (image.shape[1] // 2, image.shape[2] // 2)
                    y0 = int(np.clip(cy - h // 2, 0, image.shape[1] - h))
                    x0 = int(np.clip(cx - w // 2, 0, image.shape[2] - w))
                else:
                    y0, x0 = int(rng.integers(image.shape[1] - h + 1)), int(rng.integers(image.shape[2] - w + 1))
                x = torch.from_numpy(np.ascontiguousarray(image[None, :, y0 : y0 + h, x0 : x0 + w])).float().to(dev)
                with torch.no_grad():
                    s_emb.append(heads["student"].to(dev)(s_model(x[:, [channel]])[1]).cpu().numpy()[0])
                    t_emb.append(heads["teacher"].to(dev)(t_model(x)[1]).cpu().numpy()[0])
        return np.array(s_emb), np.array(t_emb)

    def predict(self, run: Run, volume: CaseVolume):
        """A run's class map of one case, computed as its held-out scores were (the same field of
        view and precision; the network is loaded once per run)."""
        from pkd_lessons.evaluation.prediction import inference_window, predict_volume
        from pkd_lessons.training.precision import choose_precision

        device = pick_device(self.settings["device"])
        key = (str(run.checkpoint), run.checkpoint_sha256)
        if key not in self._predictors:
            precision = choose_precision(device.type, run.config.amp)
            self._predictors[key] = (self.model(run), precision if precision.dtype else None)
        model, precision = self._predictors[key]
        how = dict(inference_window(run.config), device=device, precision=precision)
        return predict_volume(model, volume, run.config.input_modalities, **how)

    def slice_logits(self, run: Run, volume: CaseVolume, index: int):
        """A run's logits on one axial slice, ``(K, X, Y)``, through the field of view it trained on
        (whole slices, or sliding windows of its training windows: see
        :func:`~pkd_lessons.evaluation.prediction.inference_window`)."""
        import torch

        from pkd_lessons.evaluation.prediction import inference_window, predict_volume

        device = pick_device(self.settings["device"])
        how = dict(inference_window(run.config), device=device, return_logits=True, slices=[index])
        logits = predict_volume(self.model(run), volume, run.config.input_modalities, **how)
        return torch.from_numpy(logits[..., index])

    # -- outputs ---------------------------------------------------------------------------------
    def save_figure(self, fig: plt.Figure, name: str) -> None:
        """Save a figure as ``OUT/name.png`` (atomically).

        Returns nothing, so that a cell ending with it shows the figure and no path.
        """
        with atomic_file(self.out / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=80, bbox_inches="tight")

    def write_summary(self, markdown: str) -> None:
        """Write the lesson's ``summary.md`` (collected by the lessons runner into ``SUMMARY.md``) and
        show it as the lesson's closing summary, with this run's numbers (without its figures, which
        the lesson has already shown)."""
        text = markdown.strip() + "\n"
        with atomic_file(self.out / "summary.md") as tmp:
            tmp.write_text(text)
        shown = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("!["))
        show("### What this run showed", shown.strip())


def check_settings(settings: dict) -> None:
    """Refuse lesson settings that cannot work, with one line naming the parameter.

    Args:
        settings: a profile's settings with the notebook's overrides (:func:`get_profile`).

    Raises:
        ValueError: ``seeds`` below 1; a ``split`` that is not three positive shares (training,
            validation, test cases); ``brain_cases`` or ``cardiac_cases`` fewer than 3 (one case per
            group); a step count or batch size below 1.

    Examples:
        >>> check_settings({**get_profile("quick"), "seeds": 0})
        Traceback (most recent call last):
        ...
        ValueError: seeds=0: a lesson needs at least 1 training seed
    """
    if int(settings["seeds"]) < 1:
        raise ValueError(f"seeds={settings['seeds']}: a lesson needs at least 1 training seed")
    split = tuple(settings["split"])
    if len(split) != 3 or min(split) <= 0:
        raise ValueError(
            f"split={split}: give three positive shares (training, validation, test cases), e.g. (12, 4, 20)"
        )
    for key in ("brain_cases", "cardiac_cases"):
        if int(settings[key]) < len(split):
            raise ValueError(f"{key}={settings[key]}: the split needs at least {len(split)} cases, one per group")
    for key in ("teacher_steps", "student_steps", "cardiac_steps", "batch_size", "cardiac_batch_size"):
        if int(settings[key]) < 1:
            raise ValueError(f"{key}={settings[key]}: must be at least 1")


def teacher_overrides(cfg: TrainConfig, overrides: dict) -> dict:
    """The settings a distilled run passes to :meth:`Lesson.run` for its teacher.

    Its own overrides, and the architecture of the teacher its method learns from where that is
    not the default one (ProtoKD's early fusion: ``teacher-s0-archearly``).

    Args:
        cfg: the distilled run's settings.
        overrides: the settings it was given.

    Returns:
        The teacher's overrides.
    """
    if "arch" in overrides or cfg.arch == TrainConfig(method="teacher").arch:
        return dict(overrides)
    return {**overrides, "arch": cfg.arch}


def _one_thread() -> None:
    """A worker of :meth:`Lesson.runs`: one thread for the network's operations."""
    import torch

    torch.set_num_threads(1)


def pool_size(jobs: int, cores: int) -> int:
    """How many single-threaded processes train ``jobs`` runs of about equal length on ``cores`` cores.

    One per core, except where one process more lets every run train in a single round: 3 runs on
    2 cores train side by side, each with two thirds of a core, instead of two together and then
    the third alone while a core waits (2 cores, 3 quick baselines: 179 s against 189 s).

    Args:
        jobs: runs to train.
        cores: CPU cores.

    Returns:
        The number of processes, at least 1.

    Examples:
        >>> [pool_size(n, 2) for n in (1, 2, 3, 4, 5, 6)]
        [1, 2, 3, 2, 2, 2]
    """
    return max(1, jobs if jobs <= cores + 1 else cores)


_WORKER_LESSONS: dict[str, Lesson] = {}
#: Below this many training samples per run (steps x batch), Lesson.runs trains one run at a time.
POOL_MIN_SAMPLES = 1000


def _stored_run(name: str, folder: Path, cfg: TrainConfig, identity: dict, saved: dict) -> Run:
    """A :class:`Run` from a stored record that :func:`reusable` accepted."""
    return Run(
        name,
        folder,
        cfg,
        saved["metrics"],
        saved["history"],
        saved["info"],
        identity,
        saved["checkpoint_sha256"],
        reused=True,
    )


def _run_in_worker(lesson: Lesson, method: str, seed: int, dataset: str, overrides: dict) -> Run:
    """One run of :meth:`Lesson.runs` in a worker process, without progress bars; the worker keeps
    the lesson (and the cases it loaded) for its next run."""
    lesson = _WORKER_LESSONS.setdefault(
        repr((lesson.settings, lesson.data_root, lesson.runs_root, lesson._folders)), lesson
    )
    return lesson.run(method, seed, dataset, progress=False, say=False, **overrides)


def _reuse_line(name: str, folder: Path, saved: dict, installed: bool = False) -> str:
    """The line :meth:`Lesson.run` prints for a run it does not train (``installed``: a shipped
    pretrained teacher copied into the runs folder by this call)."""
    made = saved.get("pretrained")
    if made:
        commit, minutes = str(made.get("commit", "?"))[:10], made.get("seconds", 0) / 60
        what = (
            f"the pretrained {name} shipped with pkd-lessons {made.get('version', '?')} "
            f"(trained by commit {commit} in {minutes:.1f} min on {made.get('device', '?')})"
        )
        return f"using {what}; copied to {folder}" if installed else f"reusing {what}, in {folder}"
    return f"reusing {name} ({folder}), trained earlier with these settings, data and code"


def _say(run: Run) -> None:
    """One line: what :meth:`Lesson.runs` did for a run."""
    if run.reused:
        print(f"{run.name}: reused (trained earlier with these settings)")
    else:
        print(f"{run.name}: trained, {run.info['seconds']:.0f} s")


def progress_bars() -> bool:
    """Whether the lessons show progress bars: yes, unless ``PKD_LESSONS_PROGRESS`` is 0/false/off.

    The lessons runner turns them off: a progress bar saved in an executed notebook is a frozen
    ``0%`` line in every copy of it.
    """
    return os.environ.get("PKD_LESSONS_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def show(*markdown: str) -> None:
    """Show Markdown (tables, bullet lists) rendered in a notebook; print it elsewhere.

    Args:
        markdown: pieces shown one after the other, a blank line apart; empty pieces are skipped.
    """
    text = "\n\n".join(m.strip() for m in markdown if m and m.strip())
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover (IPython ships with every install of the lessons)
        print(text)
        return
    if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
        display(Markdown(text))
    else:
        print(text)


def validation_interval(steps: int, validations: int) -> int:
    """Steps between validations so that a run of ``steps`` steps validates ``validations`` times.

    Rounded up, so that the last validation is the final step's (which always runs), not a second
    one a few steps before it.

    Args:
        steps: the run's optimisation steps.
        validations: how many validations (0: none).

    Returns:
        ``TrainConfig.validate_every`` (0 when ``validations`` is 0).
    """
    return -(-steps // validations) if validations else 0


def verdicts(
    records: list[dict],
    reference: str = "baseline",
    scale: float = 100.0,
    unit: str = "Dice points",
    metric: str = "dice",
    fixed_reference: bool = False,
) -> str:
    """Plain-language reading of a comparison, one line per method and region.

    Each difference from ``reference`` is paired by seed and case, and its 95 % interval models the
    crossed design (every seed scored on the same cases: seed, case and residual variance, each with
    its own degrees of freedom; :func:`pkd_lessons.evaluation.statistics.compare`), so that both
    sources of noise count. Each line gives n (seeds x cases), the interval, the smallest difference
    the comparison could detect with 80 % power, and how many seeds it would need to detect 1 point;
    a difference is called a gain or a loss only when its interval excludes zero.

    Args:
        records: metrics records of several methods and seeds.
        reference: the method compared against.
        scale: 100 for Dice in points, 1 for HD95 in mm.
        unit: unit named in the lines.
        metric: ``"dice"`` or ``"hd95"`` (lower is better).
        fixed_reference: the reference is one run (the teacher), compared with every seed of the others.
    """
    from pkd_lessons.evaluation.statistics import compare, verdict_lines

    rows = compare(records, reference=reference, metric=metric, fixed_reference=fixed_reference)
    return verdict_lines(rows, reference=reference, scale=scale, unit=unit)
