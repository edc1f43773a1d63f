"""What a training method is: the one object the trainer, the command line and the lessons read.

A method says what it needs from the teacher, which extra modules it trains, its loss terms with
the settings that weigh them, and what a multi-process run must gather. Adding a method is one
module beside this one, one line in :mod:`~pkd_lessons.methods.registry`, and its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # torch is imported by the methods' terms only, when a run trains
    import torch
    from torch import nn

    from pkd_lessons.training.config import TrainConfig

#: The paper's settings (temperature 10, weights 0.5 / 0.5): every method's defaults unless it says otherwise.
PAPER_DEFAULTS: Mapping[str, float] = MappingProxyType({"temperature": 10.0, "pixel_weight": 0.5, "image_weight": 0.5})


class Method:
    """One way of training a network (the teacher, the baseline, or a distilled student).

    Subclasses set the class attributes and, when they distil, :meth:`terms`. The object holds no
    state: the run's settings (:class:`~pkd_lessons.training.config.TrainConfig`) carry the options.

    Attributes:
        name: the name a run is given by (``TrainConfig.method``, ``--method``).
        title: the name spelled out, for the lessons' first use.
        summary: one line: what the network sees and learns from.
        student: False for the multimodal teacher only.
        teacher_outputs: what it reads from the frozen teacher (``"logits"``, ``"features"``: the last
            decoder features, ``"bottleneck"``); empty for a method without a teacher.
        student_outputs: what its losses read from the student (gathered across processes in a
            multi-process run, in this order).
        heads: trains the pair of projection heads (:func:`~pkd_lessons.models.heads.projection_heads`).
        weights: each extra loss term -> the setting that weighs it, in the order they are summed:
            ``loss = L_seg + sum_term cfg.<setting> * term``.
        defaults: its own defaults of ``temperature``, ``pixel_weight`` and ``image_weight`` (where
            a run does not set them).
        teacher_arch: the teacher it learns from by default: ``"attention"`` (the paper's
            modality-attention network) or ``"early"`` (modalities stacked at the input).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    student: ClassVar[bool] = True
    teacher_outputs: ClassVar[tuple[str, ...]] = ()
    student_outputs: ClassVar[tuple[str, ...]] = ("logits",)
    heads: ClassVar[bool] = False
    weights: ClassVar[Mapping[str, str]] = MappingProxyType({})
    defaults: ClassVar[Mapping[str, float]] = PAPER_DEFAULTS
    teacher_arch: ClassVar[str] = "attention"

    @property
    def needs_teacher(self) -> bool:
        """True when it learns from a frozen teacher."""
        return bool(self.teacher_outputs)

    def terms(
        self,
        student: dict[str, torch.Tensor],
        teacher: dict[str, torch.Tensor],
        labels: torch.Tensor,
        cfg: TrainConfig,
        heads: nn.ModuleDict,
    ) -> dict[str, torch.Tensor]:
        """The loss terms beside ``L_seg`` on one batch (none for a method without a teacher).

        Args:
            student: the student's outputs (:attr:`student_outputs`).
            teacher: the teacher's (:attr:`teacher_outputs`, no gradient).
            labels: ``(B, *S)`` class indices of the batch.
            cfg: the run's settings.
            heads: the projection heads (empty unless :attr:`heads`).

        Returns:
            term name -> scalar, the names of :attr:`weights`.
        """
        return {}

    def total(self, terms: dict[str, torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
        """``L_seg + sum_term cfg.<weights[term]> * term``, in the order of :attr:`weights`."""
        total = terms["seg"]
        for term, setting in self.weights.items():
            total = total + getattr(cfg, setting) * terms[term]
        return total

    def teacher_problem(self, teacher: TrainConfig, cfg: TrainConfig) -> str:
        """Why a teacher cannot be distilled into this run ("" when it can), beyond modalities and dims."""
        return ""

    def __repr__(self) -> str:
        return f"<method {self.name}: {self.summary}>"
