"""One trainer for the teacher, the unimodal baseline and every distilled student.

The loss of a step is the method's (:mod:`pkd_lessons.methods`: ``L_seg``,
:func:`~pkd_lessons.losses.segmentation.segmentation_loss` on the rater's labels, plus the
method's distillation terms, each weighed by its setting); the trainer asks the method what it
needs from the teacher, which heads it trains and what a multi-process run gathers.

The teacher is frozen (no gradient, eval mode); its projection head is trained with the student's,
as in the reference code. In 2D its outputs are computed once for the training slices
(``cache_teacher``), so a distilled step costs about as much as a baseline step.

The input path is built for accelerators: the training slices and cached teacher outputs live on
the GPU when they fit (pinned host memory with asynchronous copies otherwise,
:mod:`pkd_lessons.training.inputs`), batches are augmented there (:mod:`pkd_lessons.training.augment`), the networks
run channels-last in bf16/fp16 (:mod:`pkd_lessons.training.precision`), optionally compiled, and a step never
waits for the host: loss values are collected on the device and read back only when the history,
a progress display or a checkpoint needs them.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pkd_lessons.atomic import check_writable_folder
from pkd_lessons.data.datasets import CropDataset
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.errors import DataError, TrainingError
from pkd_lessons.evaluation.prediction import validation_dice
from pkd_lessons.losses import segmentation_loss
from pkd_lessons.models import MultimodalTeacher, early_fusion_teacher, projection_heads, student
from pkd_lessons.training.augment import BatchAugment, random_crops
from pkd_lessons.training.checkpoint import (
    check_compatible,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
    save_or_rescue,
)
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.device import pick_device, synchronize
from pkd_lessons.training.distributed import Ranks, Replica, barrier, gather, step_seed
from pkd_lessons.training.inputs import BatchFeed, CropFeed, SliceBank, TeacherOutputs, teacher_cache
from pkd_lessons.training.loss_log import LossLog
from pkd_lessons.training.optim import decay_groups, poly_lr
from pkd_lessons.training.precision import choose_precision
from pkd_lessons.training.teacher_store import cached_teacher_outputs, outputs_file_name

#: Steps timed (after the first) for the announced estimate of a run's duration.
ANNOUNCE_STEPS = 10


def build_model(cfg: TrainConfig) -> nn.Module:
    """The network a config describes (teacher or student), freshly initialised."""
    if not cfg.is_student:
        make = MultimodalTeacher if cfg.arch == "attention" else early_fusion_teacher
        return make(cfg.modalities, cfg.num_classes, cfg.spatial_dims, cfg.widths, dropout=cfg.dropout)
    return student(cfg.num_classes, cfg.spatial_dims, cfg.widths, modality=cfg.modality, dropout=cfg.dropout)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: how a teacher is used by its students."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig, dict]:
    """Load a trained network from a checkpoint.

    Returns:
        ``(model, config, checkpoint)``; the model is in eval mode on ``device``.
    """
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg, state


class Trainer:
    """Trains one network of any method; see the module docstring for the losses.

    Args:
        cfg: the run's settings.
        volumes: training cases (their ``label``, the rater's annotation, is what is learned).
        teacher: the frozen teacher, required by the distilled methods (its config must list the same
            modalities).
        device: ``"auto"`` or a device name.
        progress: show a progress bar.
        teacher_id: fingerprint of the teacher's checkpoint, recorded in the student's checkpoints.
        cache_dir: folder where the teacher's cached outputs are kept between runs (keyed by the
            teacher's fingerprint and the training cases), so that several students share one pass.
        validation: cases scored every ``cfg.validate_every`` steps (never trained on).
        ranks: this process's place in a multi-process run (:mod:`pkd_lessons.training.distributed`;
            3D runs only); one process when None.

    Raises:
        ValueError: inconsistent settings, data or teacher; a multi-process 2D run, or a batch that
            does not divide among the processes.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        volumes: list[CaseVolume],
        teacher: nn.Module | None = None,
        device: str | torch.device = "auto",
        progress: bool = True,
        teacher_id: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        validation: list[CaseVolume] | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        self.cfg = cfg
        self.ranks = ranks or Ranks()
        if self.ranks.distributed:
            if cfg.spatial_dims != 3:
                raise ValueError(
                    "training over several processes is implemented for 3D runs (--dims 3, the faithful "
                    "profile); a 2D run fits one GPU"
                )
            self.ranks.shard(cfg.batch_size)  # refuses a batch that does not divide, before any work
        self.device = pick_device(device) if isinstance(device, str) else device
        self.precision = choose_precision(self.device.type, cfg.amp)
        self.progress = progress
        self.case_ids = [v.case_id for v in volumes]
        self.data_id = data_fingerprint(volumes)
        self.validation = list(validation or [])
        overlap = set(self.case_ids) & {v.case_id for v in self.validation}
        if overlap:
            raise ValueError(f"validation cases must not be training cases: {sorted(overlap)}")
        if cfg.needs_teacher and teacher is None:
            raise ValueError(f"method {cfg.method!r} distils from a teacher: pass a trained teacher")
        if volumes and volumes[0].modalities != cfg.modalities:
            raise ValueError(f"the data's modalities {volumes[0].modalities} differ from the config's {cfg.modalities}")
        torch.manual_seed(cfg.seed)
        self.channels_last = cfg.channels_last and self.device.type == "cuda" and cfg.spatial_dims == 2
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = build_model(cfg).to(self.device, memory_format=layout)
        # torch.compile traces on the first call (a minute or more); off by default, see TrainConfig.
        self._forward = torch.compile(self.model.forward_all) if cfg.compile else self.model.forward_all
        self.method = cfg.method_object
        self.heads = (
            projection_heads(cfg.widths[0], self.input_size(cfg, volumes)) if self.method.heads else nn.ModuleDict()
        )
        self.heads.to(self.device)
        # Weight decay on the convolution and dense kernels only, as the reference's L2 term.
        groups = decay_groups([self.model, self.heads], cfg.weight_decay)
        # Fused optimisers on CUDA: one kernel per step, and with an fp16 GradScaler they check for
        # inf/NaN on the device instead of reading the result back to the host every step.
        fused = {"fused": True} if self.device.type == "cuda" else {}
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, **fused)
        else:
            self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, **fused)
        self.scaler = self.precision.grad_scaler(self.device)
        self._replica: nn.Module | None = None
        if self.ranks.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._replica = DistributedDataParallel(Replica(self.model, self.heads, self._forward), device_ids=ids)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.teacher = freeze(teacher.to(self.device, memory_format=layout)) if cfg.needs_teacher else None
        self.teacher_id = teacher_id
        self.step = 0
        self.log = LossLog(cfg.method)
        self.saved: tuple[Path, int] | None = None  # (file, step) of the last checkpoint fit() wrote
        self.resumed_from: tuple[Path, int] | None = None  # (file, step) this run continued from
        self.samples_per_second = float("nan")
        self.augment = BatchAugment(cfg.flip, cfg.intensity, cfg.affine)
        self._cached: TeacherOutputs | None = None
        if cfg.spatial_dims == 2:
            self.bank = SliceBank.from_volumes(
                volumes, multiple=2 ** (len(cfg.widths) - 1), target="truth" if cfg.train_on == "truth" else "label"
            )
            self._inputs = self.bank.channels(cfg.input_modalities)
            if self.teacher is not None and cfg.cache_teacher:
                self._cached = self._teacher_cache(cache_dir)
            self.feed = BatchFeed.build(
                self.bank,
                self._cached,
                self.device,
                cfg.placement,
                bottleneck="bottleneck" in self.method.teacher_outputs,
                features="features" in self.method.teacher_outputs,
            )
            if self.feed.placement == "pinned":  # keep one host copy: the pinned one
                self.bank.images, self.bank.labels = self.feed.tensors["images"], self.feed.tensors["labels"]
                if self._cached is not None:
                    self._cached.logits = self.feed.tensors["t_logits"]
                    self._cached.features = self.feed.tensors.get("t_features", self._cached.features)
        else:
            if cfg.train_on == "truth":
                raise ValueError("train_on='truth' is implemented for 2D slices")
            self.crops = CropDataset(volumes, cfg.crop, samples=cfg.steps * cfg.batch_size, seed=cfg.seed)
            self.feed = CropFeed.build(self.crops, self.device, cfg.placement)
            self._inputs = [cfg.modalities.index(m) for m in cfg.input_modalities]

    @staticmethod
    def input_size(cfg: TrainConfig, volumes: list[CaseVolume]) -> tuple[int, ...]:
        """Spatial size of the training inputs: the slice crop or the padded slice (2D), the crop (3D)."""
        if cfg.spatial_dims == 3:
            return tuple(cfg.crop)
        if cfg.slice_crop is not None:
            return tuple(cfg.slice_crop)
        multiple = 2 ** (len(cfg.widths) - 1)
        planes = [v.shape[:2] for v in volumes]
        return tuple(-(-max(p[i] for p in planes) // multiple) * multiple for i in range(2))

    def _teacher_cache(self, cache_dir: str | os.PathLike | None) -> TeacherOutputs:
        """The teacher's outputs for the training slices, stored between runs in ``cache_dir``
        (:mod:`~pkd_lessons.training.teacher_store`), or computed in memory when there is none."""
        if cache_dir is None or self.teacher_id is None:
            return self._compute_teacher_outputs()
        size = tuple(self.bank.images.shape[2:])
        return cached_teacher_outputs(
            self._compute_teacher_outputs,
            outputs_file_name(self.teacher_id, self.case_ids, self.data_id, size),
            cache_dir,
            slices=len(self.bank),
            size=size,
            bottleneck="bottleneck" in self.method.teacher_outputs,
        )

    def _compute_teacher_outputs(self) -> TeacherOutputs:
        return teacher_cache(
            self.teacher,
            self.bank,
            self.device,
            bottleneck=True,
            autocast=self.precision.autocast if self.precision.dtype else None,
            progress=self.progress,
        )

    # -- data ------------------------------------------------------------------------------------
    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next batch on the device (images of all modalities, labels, cached teacher outputs), augmented."""
        cfg = self.cfg
        if cfg.spatial_dims == 3:
            batch = self.feed.draw(range(self.step * cfg.batch_size, (self.step + 1) * cfg.batch_size))
        else:
            idx = torch.randint(len(self.feed), (cfg.batch_size,), generator=self.generator)
            batch = self.feed.draw(idx)
            if cfg.slice_crop is not None:
                # KD-Net's bottleneck is 2^(stages-1) times smaller: cut it at the matching place (so
                # KD-Net's windows start on that grid, and differ from the other methods' for a seed).
                grid = 2 ** (len(cfg.widths) - 1) if "t_bottleneck" in batch else 1
                batch = random_crops(batch, cfg.slice_crop, self.generator, grid)
        return self.augment(batch, self.generator)

    # -- one step --------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Poly decay of the paper, ``lr * (1 - floor(step / k) * k / steps) ** 0.9`` with
        ``k = lr_step_every`` (:func:`~pkd_lessons.training.optim.poly_lr`)."""
        return poly_lr(self.cfg.lr, step, self.cfg.steps, self.cfg.lr_step_every)

    def _teacher_outputs(self, batch: dict, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if "t_logits" in batch:
            out = {
                "logits": batch["t_logits"],
                "features": batch.get("t_features"),
            }  # features: where the method reads them
            if "t_bottleneck" in batch:
                out["bottleneck"] = batch["t_bottleneck"]
            return out
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self.precision.autocast(self.device):
            full = self.teacher.forward_all(images)
        return {
            "logits": full["logits"].float(),
            "features": full["features"].float(),
            "bottleneck": full["bottleneck"].float(),
        }

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term of the method on one batch (on the trainer's device)."""
        cfg = self.cfg
        if self.ranks.distributed:  # this rank's shard of the global batch
            part = self.ranks.shard(cfg.batch_size)
            batch = {k: v[part] for k, v in batch.items()}
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        images, labels = batch["images"], batch["labels"]
        inputs = images[:, self._inputs]
        if self.channels_last:  # after choosing the channels: indexing returns the default layout
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast(self.device):
            out = self._replica(inputs) if self._replica is not None else self._forward(inputs)
        t = self._teacher_outputs(batch, images) if self.teacher is not None else {}
        if self.ranks.distributed:  # the losses see the whole global batch, as in one process
            # in one fixed order on every rank: collectives must match one to one across the processes
            used = self.method.student_outputs
            out = {k: gather(out[k], self.ranks) for k in used}
            t = {k: gather(t[k], self.ranks) for k in used if t.get(k) is not None}
            labels = gather(labels, self.ranks)
        terms = {"seg": segmentation_loss(out["logits"], labels)}
        if self.teacher is not None:
            terms.update(self.method.terms(out, t, labels, cfg, self.heads))
        terms["loss"] = self.method.total(terms, cfg)
        return terms

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimisation step; returns the loss terms as detached tensors on the device.

        Nothing here waits for the device: the terms are kept on it and read back in one transfer
        when :attr:`history` is next read.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        if self.ranks.distributed:  # dropout: each rank its own draws, the same again on a resumed run
            torch.manual_seed(step_seed(self.cfg.seed, self.step, self.ranks.rank))
        terms = self.optimise(self.next_batch())
        self.step += 1
        values = {k: v.detach() for k, v in terms.items()}
        self.log.add(values)
        self.log.note("lr", self.optimizer.param_groups[0]["lr"])
        return values

    def optimise(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward, losses, backward and optimiser step on one batch; the step counter is left alone."""
        self.model.train()
        self.heads.train()
        terms = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    @property
    def history(self) -> dict[str, list[float]]:
        """Every loss term (and the learning rate) per step, as floats
        (:class:`~pkd_lessons.training.loss_log.LossLog`).

        Raises:
            TrainingError: a loss term of a step not yet read back is NaN or infinite.
        """
        return self.log.read(self.step)

    @property
    def diverged(self) -> int | None:
        """The step whose loss (or weights) was not finite, if any."""
        return self.log.diverged

    def check_finite(self) -> None:
        """Refuse loss values not yet read back that are not finite (:meth:`LossLog.check_finite
        <pkd_lessons.training.loss_log.LossLog.check_finite>`).

        Raises:
            TrainingError: naming the step and the term.
        """
        self.log.check_finite(self.step)

    def fit(
        self,
        until: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        checkpoint_seconds: float = 0.0,
        announce: str | None = None,
    ) -> dict[str, list[float]]:
        """Train up to step ``until`` (default: the config's ``steps``).

        Args:
            until: last step to reach (a run can be stopped early and resumed).
            checkpoint: file for checkpoints; written at the end, every ``checkpoint_every`` steps
                and after every ``checkpoint_seconds`` of training.
            checkpoint_every: steps between checkpoints (0: not by steps).
            checkpoint_seconds: seconds between checkpoints (0: not by time).
            announce: the start of a line printed once the first steps are timed, completed with
                the time the run will take on this device (``"training pkl-s0"`` prints
                ``"training pkl-s0 (400 steps): about 3 min on cpu"``); None prints nothing.

        Returns:
            The history of every loss term per step.
        """
        until = self.cfg.steps if until is None else min(until, self.cfg.steps)
        try:
            self._fit(until, checkpoint, checkpoint_every, checkpoint_seconds, announce)
        except TrainingError as err:
            if self.saved is not None:
                where = f"the last good checkpoint is {self.saved[0]} (step {self.saved[1]})"
            elif self.resumed_from is not None:
                file, step = self.resumed_from
                where = f"the last good checkpoint is {file} (step {step}, where this run resumed)"
            else:
                where = "no checkpoint of this run was written"
            raise TrainingError(f"{err}; {where}") from None
        return dict(self.history)

    def _fit(
        self,
        until: int,
        checkpoint: str | os.PathLike | None,
        checkpoint_every: int,
        checkpoint_seconds: float = 0.0,
        announce: str | None = None,
    ) -> None:
        main = self.ranks.is_main
        show = self.progress and main
        bar = tqdm(total=until, initial=self.step, desc=self.cfg.method, unit="step", disable=not show)
        start, first = time.perf_counter(), self.step
        last_saved = start
        # the pace is judged over the first steps after the first (which pays for warm-up)
        pace_from, pace_at = None, max(1, min(ANNOUNCE_STEPS, (until - first) // 10))
        if announce and main and self.step >= until:
            print(f"{announce}: already trained to step {until}")
        # On the CPU every step is checked (reading a value back costs nothing); on an accelerator
        # every 10 steps, so that steps do not wait for the host. Nothing is saved unchecked.
        check_every = 1 if self.device.type == "cpu" else 10
        while self.step < until:
            values = self.train_step()
            if self.step % check_every == 0 or self.step == until:
                self.check_finite()
            if show and (self.step % 10 == 0 or self.step == until):
                elapsed = time.perf_counter() - start
                self.samples_per_second = (self.step - first) * self.cfg.batch_size / max(elapsed, 1e-9)
                values = {k: float(v) for k, v in values.items()}  # waits for the device, every 10 steps
                bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in values.items() if k != "loss"}
                    | {"loss": f"{values['loss']:.3f}", "img/s": f"{self.samples_per_second:.0f}"}
                )
            bar.update(1)
            every = self.cfg.validate_every
            if self.validation and every and (self.step % every == 0 or self.step == self.cfg.steps):
                if main:  # one rank scores; the others wait for it
                    self.validate()
                barrier(self.ranks)
            if announce and main:
                if pace_from is None:
                    pace_from = (self.step, time.perf_counter())
                elif self.step - pace_from[0] == pace_at:
                    per_step = (time.perf_counter() - pace_from[1]) / pace_at
                    resumed = f", resuming at step {first}" if first else ""
                    print(
                        f"{announce} ({self.cfg.steps} steps{resumed}): about "
                        f"{_minutes(per_step * (until - first))} on {self.device.type}"
                    )
            due = checkpoint_every and self.step % checkpoint_every == 0
            if checkpoint_seconds and time.perf_counter() - last_saved >= checkpoint_seconds:
                due = True
            if checkpoint and due and self.step < until:
                self._save_or_rescue(checkpoint)
                last_saved = time.perf_counter()
        bar.close()
        synchronize(self.device)
        self.samples_per_second = (self.step - first) * self.cfg.batch_size / max(time.perf_counter() - start, 1e-9)
        if checkpoint:
            self._save_or_rescue(checkpoint)

    def _save_or_rescue(self, path: str | os.PathLike) -> None:
        """Rank 0 writes the checkpoint (see :meth:`_write_or_rescue`); every rank waits until it is
        complete, so that no rank reads a half-written file or goes on without it."""
        if self.ranks.is_main:
            self._write_or_rescue(path)
        else:
            self.check_finite()  # the same losses as rank 0's: the same verdict
            self.saved = (Path(path), self.step)
        barrier(self.ranks)

    def _write_or_rescue(self, path: str | os.PathLike) -> None:
        """Write a checkpoint, or a rescued copy in the temporary folder
        (:func:`~pkd_lessons.training.checkpoint.save_or_rescue`)."""
        name = f"pkd-lessons-rescued-{self.cfg.method}-s{self.cfg.seed}-step{self.step}-{os.getpid()}.pt"
        save_or_rescue(self.save, path, name)
        self.saved = (Path(path), self.step)

    def validate(self) -> dict[str, float]:
        """Score the validation cases now (Dice per region inside the brain) and add it to the history
        as ``val_step`` and ``val_<region>``."""
        dice = validation_dice(
            self.model, self.cfg, self.validation, self.device, self.precision if self.precision.dtype else None
        )
        self.log.note("val_step", float(self.step))
        for region, value in dice.items():
            self.log.note(f"val_{region}", value)
        return dice

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this run is."""
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "heads": self.heads.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            # Dropout draws from the global generators: keep them too, so that a resumed run repeats.
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "history": {k: list(v) for k, v in self.history.items()},
            "cases": list(self.case_ids),
            "data": self.data_id,
            "teacher": self.teacher_id,
            "precision": self.precision.name,
            # the global batch is the config's batch_size; it was split among this many processes
            "processes": self.ranks.world,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint atomically.

        Raises:
            TrainingError: the run's loss was not finite at some step: its weights are not saved.
        """
        state = self.state_dict()  # reading the history checks the losses not yet checked
        if self.diverged is not None:
            raise TrainingError(f"{path}: not written: the loss of step {self.diverged} was not finite")
        # A finite loss does not make the update after it finite (an overflowing gradient without a
        # loss scaler): the weights themselves are checked, in one reduction, before they are kept.
        params = [p.detach() for p in [*self.model.parameters(), *self.heads.parameters()]]
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            self.log.diverged = self.step
            raise TrainingError(
                f"step {self.step} of {self.cfg.method}: the weights are no longer finite "
                f"(NaN or infinite) although the loss was; {path} not written"
            )
        return save_checkpoint(state, path)

    def load_state(self, state: dict, path: str | os.PathLike = "checkpoint") -> None:
        """Continue from a checkpoint of the same run (same settings, cases and teacher).

        Raises:
            DataError: the checkpoint belongs to another model, settings, data or teacher.
        """
        check_compatible(state, self.cfg, path, strict=True)
        if state.get("cases") != self.case_ids:
            raise DataError(f"{path}: checkpoint was trained on other cases than this run's")
        if state.get("data") not in (None, self.data_id):  # None: written before data were fingerprinted
            raise DataError(
                f"{path}: checkpoint was trained on other data under the same case identifiers "
                "(the images or labels differ); start a new run folder"
            )
        if self.cfg.needs_teacher and state.get("teacher") != self.teacher_id:
            raise DataError(
                f"{path}: checkpoint was distilled from another teacher ({state.get('teacher')} vs {self.teacher_id})"
            )
        self._check_trainable_state(state, path)
        self.model.load_state_dict(state["model"])
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state["scaler"]:  # a run saved without fp16 has no scaler state
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        if state.get("torch_rng") is not None:
            torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = int(state["step"])
        self.log.restore(state["history"])

    def _check_trainable_state(self, state: dict, path: str | os.PathLike) -> None:
        """Refuse, before loading anything, heads or optimiser groups of another layout.

        Checkpoints of pkd-lessons 0.3 and earlier have projection heads with biases and one
        optimiser group with weight decay on every parameter; this run's heads have none and its
        optimiser decays the kernels only (:func:`~pkd_lessons.training.optim.decay_groups`).

        Raises:
            DataError: naming what does not fit.
        """
        heads = set(state["heads"]) == set(self.heads.state_dict())
        saved = [len(g["params"]) for g in state["optimizer"]["param_groups"]]
        groups = saved == [len(g["params"]) for g in self.optimizer.param_groups]
        if not (heads and groups):
            what = "projection heads" if not heads else "optimiser parameter groups"
            raise DataError(
                f"{path}: the checkpoint's {what} do not fit this run (written by an older pkd-lessons, "
                "whose heads had biases and whose weight decay covered every parameter); start a new run folder"
            )

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Load a checkpoint written by this run's :meth:`save` (see :meth:`load_state`)."""
        self.load_state(load_checkpoint(path, map_location="cpu"), path)
        self.resumed_from = (Path(path), self.step)
        return self


def data_fingerprint(volumes: list[CaseVolume]) -> str:
    """A short identifier of training data: every case's identifier, images and labels, all bytes."""
    h = hashlib.sha256()
    for v in volumes:
        h.update(v.case_id.encode())
        for array in (v.image, v.label):
            if array is not None:
                h.update(str((array.dtype, array.shape)).encode())
                h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()[:16]


def train(
    cfg: TrainConfig,
    volumes: list[CaseVolume],
    teacher_checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    resume: bool = False,
    checkpoint_every: int = 0,
    checkpoint_seconds: float = 0.0,
    announce: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    validation: list[CaseVolume] | None = None,
    ranks: Ranks | None = None,
    until: int | None = None,
) -> Trainer:
    """Train one run end to end; the convenience the lessons and the command line use.

    Args:
        cfg: settings.
        volumes: training cases.
        teacher_checkpoint: the trained teacher (distilled methods).
        out: folder for ``checkpoint.pt``; None keeps everything in memory.
        device: ``"auto"`` or a device name.
        progress: progress bar.
        resume: continue from ``out/checkpoint.pt`` if it exists.
        checkpoint_every: steps between intermediate checkpoints.
        checkpoint_seconds: seconds of training between intermediate checkpoints.
        announce: a line's start printed with the time the run will take (:meth:`Trainer.fit`).
        cache_dir: where to keep the teacher's outputs between runs (default: beside its checkpoint).
        validation: cases scored every ``cfg.validate_every`` steps into the history.
        ranks: this process's place in a multi-process run (3D; see
            :mod:`pkd_lessons.training.distributed`); rank 0 writes the checkpoints.
        until: stop after this step (a checkpoint is written; ``resume`` continues); None: ``cfg.steps``.

    Returns:
        The finished :class:`Trainer`.

    Raises:
        ValueError: a teacher given to a method that does not use one, or missing for one that does.
        DataError: an unusable output folder, teacher or checkpoint (checked before training), or a
            checkpoint that cannot be written (the run is then saved in the temporary folder).
        TrainingError: a loss that is not finite; the last good checkpoint is kept.
    """
    if teacher_checkpoint is not None and not cfg.needs_teacher:
        raise ValueError(
            f"method {cfg.method!r} does not learn from a teacher; drop the teacher checkpoint ({teacher_checkpoint})"
        )
    if out is not None:
        check_writable_folder(out, "run folder")  # before any work, not after it
    teacher, teacher_id = None, None
    if cfg.needs_teacher:
        if teacher_checkpoint is None:
            raise ValueError(f"method {cfg.method!r} needs a teacher checkpoint")
        teacher, teacher_cfg, state = load_model(teacher_checkpoint)
        if teacher_cfg.is_student:
            raise DataError(f"{teacher_checkpoint}: this is a student ({teacher_cfg.method}), not a teacher")
        if teacher_cfg.modalities != cfg.modalities or teacher_cfg.spatial_dims != cfg.spatial_dims:
            raise DataError(
                f"{teacher_checkpoint}: teacher sees {teacher_cfg.modalities} in "
                f"{teacher_cfg.spatial_dims}D; this run needs {cfg.modalities} in {cfg.spatial_dims}D"
            )
        if teacher_cfg.arch != cfg.arch:
            raise DataError(
                f"{teacher_checkpoint}: a teacher of architecture {teacher_cfg.arch!r}, where this run's settings "
                f"name {cfg.arch!r} (set arch={teacher_cfg.arch!r} to distil from it)"
            )
        problem = cfg.method_object.teacher_problem(teacher_cfg, cfg)
        if problem:
            raise DataError(f"{teacher_checkpoint}: {problem}")
        teacher_id = fingerprint(state)
    if cache_dir is None and teacher_checkpoint is not None:
        cache_dir = Path(teacher_checkpoint).parent
    trainer = Trainer(
        cfg,
        volumes,
        teacher,
        device=device,
        progress=progress,
        teacher_id=teacher_id,
        cache_dir=cache_dir,
        validation=validation,
        ranks=ranks,
    )
    path = Path(out) / "checkpoint.pt" if out else None
    if resume and path is not None and path.is_file():
        trainer.resume(path)
    trainer.fit(
        until,
        checkpoint=path,
        checkpoint_every=checkpoint_every,
        checkpoint_seconds=checkpoint_seconds,
        announce=announce,
    )
    return trainer


def _minutes(seconds: float) -> str:
    """A duration as a person reads it: ``"40 s"``, ``"3 min"``, ``"1.5 h"``."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for code outside the trainer)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
