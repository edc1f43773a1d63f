"""Networks: shapes in 2D and 3D, attention fusion, projection heads, clear errors, they learn."""

from __future__ import annotations

import pytest
import torch

from pkd_lessons.losses import segmentation_loss
from pkd_lessons.models import MultimodalTeacher, ProjectionHead, early_fusion_teacher, student

BRAIN = ("flair", "t1", "t1ce", "t2")
SMALL = (4, 8, 16, 32)


@pytest.mark.parametrize("dims,size", [(2, (40, 48)), (2, (37, 45)), (3, (16, 24, 20)), (3, (13, 17, 11))])
def test_shapes(dims, size):
    x = torch.randn(2, 4, *size)
    for net in (MultimodalTeacher(BRAIN, 4, dims, SMALL), early_fusion_teacher(BRAIN, 4, dims, SMALL)):
        logits, features = net(x)
        assert logits.shape == (2, 4, *size) and features.shape == (2, SMALL[0], *size)
    logits, features = student(4, dims, SMALL)(x[:, 2:3])
    assert logits.shape == (2, 4, *size) and features.shape == (2, SMALL[0], *size)


def test_attention_is_one_weight_per_modality_and_location():
    teacher = MultimodalTeacher(BRAIN, 4, 2, SMALL)
    out = teacher.forward_all(torch.randn(3, 4, 32, 40))
    assert len(out["attention"]) == 4
    for scale, a in enumerate(out["attention"]):
        assert a.shape == (3, 4, 32 // 2**scale, 40 // 2**scale)
        assert (a >= 0).all() and (a <= 1).all()
    assert out["bottleneck"].shape == (3, SMALL[-1], 4, 5)


def test_fusion_uses_every_modality():
    torch.manual_seed(0)
    teacher = MultimodalTeacher(BRAIN, 4, 2, SMALL).eval()
    x = torch.randn(1, 4, 32, 32)
    base, _ = teacher(x)
    for m in range(4):
        changed = x.clone()
        changed[:, m] = torch.randn(32, 32)
        assert not torch.allclose(teacher(changed)[0], base), f"modality {m} ignored"


def test_teacher_with_a_missing_modality_fails_clearly():
    teacher = MultimodalTeacher(BRAIN, 4, 2, SMALL)
    with pytest.raises(ValueError, match=r"needs all 4 modalities \(flair, t1, t1ce, t2\).*got 3 channel"):
        teacher(torch.randn(1, 3, 32, 32))


def test_bad_inputs():
    with pytest.raises(ValueError, match="expected 1 input channel"):
        student(4, 2, SMALL)(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        student(4, 1, SMALL)
    with pytest.raises(ValueError, match="at least two modalities"):
        MultimodalTeacher(("t1",), 4)
    with pytest.raises(ValueError, match=r"expected a \(B, C, H, W\) tensor"):
        student(4, 2, SMALL)(torch.randn(1, 1, 8, 8, 8))


@pytest.mark.parametrize("dims", [2, 3])
def test_projection_head(dims):
    features = torch.randn(5, 8, *([6] * dims))
    emb = ProjectionHead(8)(features)
    assert emb.shape == (5, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)


def test_default_widths_follow_the_reference():
    net = student(4)
    assert net.widths == (16, 32, 64, 128)
    norm = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    act = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert norm and act and all(a.negative_slope == 0.2 for a in act)


def test_student_learns_a_tiny_problem():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 16, 16)
    target = (x[:, 0] > 0.5).long() + (x[:, 0] > 1.5).long()
    net = student(3, 2, SMALL)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = segmentation_loss(net(x)[0], target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
