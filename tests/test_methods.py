"""Methods as objects: each declares what it reads and returns, the registry is the one list."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pkd_lessons import DataError
from pkd_lessons.data import find_cases, load_cases
from pkd_lessons.lessons.lesson import teacher_overrides
from pkd_lessons.methods import DISTILLED_METHODS, REGISTRY, STUDENT_METHODS, get_method
from pkd_lessons.models import projection_heads
from pkd_lessons.training.config import METHODS, TrainConfig
from pkd_lessons.training.trainer import train

W = (8, 16, 32, 64)


def _outputs(keys: tuple[str, ...], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = {"logits": (4, 4, 8, 8), "features": (4, 8, 8, 8), "bottleneck": (4, 64, 1, 1)}
    return {k: torch.randn(*shapes[k], generator=g, requires_grad=seed == 0) for k in keys}


@pytest.mark.parametrize("name", DISTILLED_METHODS)
def test_a_method_reads_what_it_declares_and_returns_its_weighed_terms(name):
    """Given only the outputs it declares, a method returns exactly the terms it weighs, each finite
    and each sending a gradient to the student."""
    method = get_method(name)
    cfg = TrainConfig(method=name, widths=W)
    student = _outputs(method.student_outputs, seed=0)
    teacher = _outputs(method.teacher_outputs, seed=1)
    labels = (torch.arange(64).reshape(8, 8) % 3).expand(4, 8, 8).clone()  # classes 0-2 in every image
    heads = projection_heads(W[0], (8, 8)) if method.heads else torch.nn.ModuleDict()
    terms = method.terms(student, teacher, labels, cfg, heads)
    assert list(terms) == list(method.weights)
    for term, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), term
        grads = torch.autograd.grad(value, [student[k] for k in method.student_outputs], allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), term


@pytest.mark.parametrize(
    "name, settings, terms, total",
    [
        ("baseline", {}, {"seg": 1.0}, 1.0),
        ("kd", {}, {"seg": 1.0, "pixel": 2.0}, 2.0),  # 1 + 0.5 * 2
        ("pkl", {}, {"seg": 1.0, "pixel": 2.0, "image": 4.0}, 4.0),  # 1 + 0.5 * 2 + 0.5 * 4
        ("pkl", {"pixel_weight": 1.0, "image_weight": 0.0}, {"seg": 1.0, "pixel": 2.0, "image": 4.0}, 3.0),
        ("kdnet", {"image_weight": 2.0}, {"seg": 1.0, "pixel": 2.0, "image": 4.0}, 10.0),  # 1 + 0.5 * 2 + 2 * 4
        ("protokd", {}, {"seg": 1.0, "pixel": 2.0, "proto": 4.0}, 21.4),  # 1 + 10 * 2 + 0.1 * 4
    ],
)
def test_total_weighs_each_term_by_its_setting(name, settings, terms, total):
    cfg = TrainConfig(method=name, **settings)
    value = get_method(name).total({k: torch.tensor(v, dtype=torch.float64) for k, v in terms.items()}, cfg)
    assert float(value) == pytest.approx(total, abs=1e-12)


@pytest.mark.parametrize(
    "name, settings, expected",
    [
        ("teacher", {}, (10.0, 0.5, 0.5, "attention")),
        ("pkl", {}, (10.0, 0.5, 0.5, "attention")),
        ("kdnet", {"temperature": 4.0}, (4.0, 0.5, 0.5, "attention")),
        ("protokd", {}, (10.0, 10.0, 0.1, "early")),  # the authors' weights and teacher
        ("protokd", {"pixel_weight": 1.0, "arch": "attention"}, (10.0, 1.0, 0.1, "attention")),
    ],
)
def test_settings_left_unset_are_the_methods_own(name, settings, expected):
    cfg = TrainConfig(method=name, **settings)
    assert (cfg.temperature, cfg.pixel_weight, cfg.image_weight, cfg.arch) == expected
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # what a checkpoint stores is the resolved value


def test_the_registry_is_the_one_list_of_methods():
    from pkd_lessons.cli import build_parser
    from pkd_lessons.lessons.profiles import ALL_METHODS
    from pkd_lessons.lessons.reference import REFERENCE_METHODS

    assert list(METHODS) == list(REGISTRY) and "protokd" in REGISTRY
    assert tuple(m for m in REGISTRY if m != "teacher") == STUDENT_METHODS
    assert set(ALL_METHODS) == {"control", *DISTILLED_METHODS} and set(REFERENCE_METHODS) == {"baseline", *ALL_METHODS}
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    (method,) = [a for a in train_parser._actions if a.dest == "method"]
    assert list(method.choices) == list(REGISTRY)
    with pytest.raises(ValueError, match="method must be one of teacher, baseline"):
        get_method("distil")


def test_a_lesson_gives_each_student_the_teacher_of_its_method():
    assert teacher_overrides(TrainConfig(method="pkl"), {"dropout": 0.0}) == {"dropout": 0.0}
    assert teacher_overrides(TrainConfig(method="protokd"), {}) == {"arch": "early"}
    chosen = TrainConfig(method="protokd", arch="attention")
    assert teacher_overrides(chosen, {"arch": "attention"}) == {"arch": "attention"}


def test_a_student_refuses_a_teacher_of_another_architecture(brain_set, tmp_path):
    volumes = load_cases(find_cases(brain_set), progress=False)[:2]
    small = {"widths": W, "steps": 1, "batch_size": 2, "slice_crop": (32, 32)}
    train(TrainConfig(method="teacher", **small), volumes, out=tmp_path / "t", device="cpu", progress=False)
    with pytest.raises(DataError, match=r"architecture 'attention', where this run's settings name 'early'"):
        train(TrainConfig(method="protokd", **small), volumes, tmp_path / "t" / "checkpoint.pt", progress=False)
    trainer = train(
        TrainConfig(method="protokd", arch="attention", **small),
        volumes,
        tmp_path / "t" / "checkpoint.pt",
        progress=False,
    )
    assert set(trainer.history) - {"loss", "lr"} == {"seg", "pixel", "proto"}


def test_protokd_trains_in_3d_from_an_early_fusion_teacher(brain_set):
    """3D crops: the prototype term over volumes, from a (fresh) early-fusion teacher's features."""
    from pkd_lessons.training.trainer import Trainer, build_model

    volumes = load_cases(find_cases(brain_set), progress=False)[:2]
    small = {"widths": W, "spatial_dims": 3, "crop": (16, 16, 16), "batch_size": 2, "steps": 2}
    teacher = build_model(TrainConfig(method="teacher", arch="early", **small))
    trainer = Trainer(TrainConfig(method="protokd", **small), volumes, teacher, device="cpu", progress=False)
    history = trainer.fit()
    assert set(history) - {"loss", "lr"} == {"seg", "pixel", "proto"} and len(history["proto"]) == 2
    assert all(np.isfinite(history["loss"]))
