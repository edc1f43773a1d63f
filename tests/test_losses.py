"""Every loss pinned by hand-computed values, properties and gradient checks."""

from __future__ import annotations

import math

import pytest
import torch

from pkd_lessons.losses import (
    class_weights,
    contrastive_kd_loss,
    equidistant_loss,
    feature_kl_loss,
    infonce_kd_loss,
    kd_loss,
    kdnet_loss,
    kdnet_terms,
    regularization_weights,
    regularized_kd_loss,
    segmentation_loss,
)
from pkd_lessons.losses.protokd import protokd_kd_loss, prototype_loss, prototype_maps
from pkd_lessons.losses.segmentation import squared_dice_loss, weighted_cross_entropy

LN3, LN9 = math.log(3.0), math.log(9.0)


def voxels(*logits: tuple[float, float]) -> torch.Tensor:
    """Two-class logits of a row of voxels, shape (1, 2, N)."""
    return torch.tensor(logits, dtype=torch.float64).t().unsqueeze(0)


# --- segmentation loss -------------------------------------------------------------------------


def test_class_weights():
    target = torch.tensor([[0, 0, 0, 1]])
    assert class_weights(target, 3).tolist() == pytest.approx([0.25, 0.75, 1.0])


def test_segmentation_loss_by_hand():
    # voxel 0: p = (0.75, 0.25), label 0; voxel 1: p = (0.5, 0.5), label 1; class weights (0.5, 0.5).
    logits = voxels((LN3, 0.0), (0.0, 0.0)).float()
    target = torch.tensor([[0, 1]])
    ce = (0.5 * -math.log(0.75) + 0.5 * -math.log(0.5)) / 2  # weighted, divided by the 2 voxels
    dice0 = 2 * 0.75 / (0.75**2 + 0.5**2 + 1.0)  # squared prediction in the denominator
    dice1 = 2 * 0.5 / (0.25**2 + 0.5**2 + 1.0)
    expected = ce + 1 - (dice0 + dice1) / 2
    assert segmentation_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)
    assert squared_dice_loss(logits, target).item() == pytest.approx(1 - (dice0 + dice1) / 2, abs=1e-6)


def test_cross_entropy_is_divided_by_all_voxels_not_the_weights():
    # 9 background voxels (p_true 0.75), 1 tumour voxel (p_true 0.5): w = (0.1, 0.9).
    logits = voxels(*[(LN3, 0.0)] * 9, (0.0, 0.0))
    target = torch.tensor([[0] * 9 + [1]])
    reference = (9 * 0.1 * -math.log(0.75) + 0.9 * -math.log(0.5)) / 10
    pytorch_weighted_mean = (9 * 0.1 * -math.log(0.75) + 0.9 * -math.log(0.5)) / (9 * 0.1 + 0.9)
    got = weighted_cross_entropy(logits, target).item()
    assert got == pytest.approx(reference, rel=1e-6)  # class weights are counted in float32
    assert got < pytorch_weighted_mean / 1.5


def test_cross_entropy_clips_probabilities_at_the_floor():
    logits = voxels((30.0, 0.0), (30.0, 0.0)).requires_grad_(True)
    target = torch.tensor([[1, 0]])  # w = (0.5, 0.5)
    loss = weighted_cross_entropy(logits, target)
    assert loss.item() == pytest.approx(0.5 * -math.log(0.005) / 2, rel=1e-6)
    loss.backward()
    assert logits.grad[0, :, 0].abs().max() == 0  # clipped: no gradient from this voxel


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_segmentation_loss_integer_targets_and_all_background(dtype):
    logits = torch.randn(2, 4, 8, 8)
    target = torch.zeros(2, 8, 8, dtype=dtype)  # all background: every class weight is 0 or 1 - 1
    loss = segmentation_loss(logits, target)
    assert torch.isfinite(loss)
    assert weighted_cross_entropy(logits, target).item() == 0.0
    classes = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    assert segmentation_loss(logits, classes.to(dtype)).item() == segmentation_loss(logits, classes).item()


def test_segmentation_loss_refuses_non_integer_targets():
    with pytest.raises(ValueError, match="integer classes"):
        segmentation_loss(torch.randn(1, 4, 4, 4), torch.zeros(1, 4, 4))


def test_segmentation_loss_shape_mismatch():
    with pytest.raises(ValueError, match="do not match"):
        segmentation_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long))


# --- plain KD ----------------------------------------------------------------------------------


def test_kd_loss_by_hand():
    zs, zt = voxels((0.0, 0.0)), voxels((LN3, 0.0))
    kl1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(zs, zt, 1.0).item() == pytest.approx(kl1, rel=1e-9)
    a = math.sqrt(3) / (1 + math.sqrt(3))  # softmax((ln3)/2, 0)
    kl2 = a * math.log(a / 0.5) + (1 - a) * math.log((1 - a) / 0.5)
    assert kd_loss(zs, zt, 2.0).item() == pytest.approx(4 * kl2, rel=1e-6)  # T^2 = 4 applied
    assert kd_loss(zs, zt, 2.0, t2_scaling=False).item() == pytest.approx(kl2, rel=1e-6)


def test_kd_loss_zero_when_equal_and_mean_over_voxels():
    z = torch.randn(2, 4, 5, 5)
    assert kd_loss(z, z, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    zs, zt = voxels((0.0, 0.0), (0.0, 0.0)), voxels((LN3, 0.0), (0.0, 0.0))
    assert kd_loss(zs, zt, 1.0).item() == pytest.approx(kd_loss(zs[..., :1], zt[..., :1], 1.0).item() / 2)


# --- regularization factor ---------------------------------------------------------------------


def test_regularization_weights_by_hand():
    # v0: teacher right (p_t=0.75), student behind (p_s=0.5)  -> ln(0.75/0.5)... = CE_s - CE_t
    # v1: teacher wrong (label 1, teacher says 0)             -> 0
    # v2: student already better than the teacher (0.9>0.75) -> 0
    zs = voxels((0.0, 0.0), (0.0, 0.0), (LN9, 0.0))
    zt = voxels((LN3, 0.0), (LN3, 0.0), (LN3, 0.0))
    target = torch.tensor([[0, 1, 0]])
    w = regularization_weights(zs, zt, target)
    assert w.shape == (1, 3)
    ce_student, ce_teacher = -math.log(0.5), -math.log(0.75)
    assert w[0].tolist() == pytest.approx([ce_student - ce_teacher, 0.0, 0.0])


def test_weights_zero_where_teacher_wrong_or_student_matches():
    torch.manual_seed(0)
    zs, zt = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    target = torch.randint(0, 4, (2, 6, 6))
    w = regularization_weights(zs, zt, target)
    assert (w >= 0).all()
    assert (w[zt.argmax(1) != target] == 0).all()
    assert (regularization_weights(zt, zt, target) == 0).all()


def test_no_gradient_through_weights():
    zs = torch.randn(1, 3, 4, 4, requires_grad=True)
    zt = torch.randn(1, 3, 4, 4, requires_grad=True)
    w = regularization_weights(zs, zt, torch.randint(0, 3, (1, 4, 4)))
    assert not w.requires_grad


# --- regularized KD ----------------------------------------------------------------------------


def test_regularized_kd_by_hand():
    # v0: label 0, p_t = (0.75, 0.25), p_s = (0.5, 0.5)
    # v1: label 0, p_t = (0.9, 0.1),   p_s = (0.25, 0.75)
    # v2: teacher wrong -> weight 0, whatever its loss
    zs = voxels((0.0, 0.0), (0.0, LN3), (5.0, -5.0))
    zt = voxels((LN3, 0.0), (LN9, 0.0), (0.0, 3.0))
    target = torch.tensor([[0, 0, 0]])
    w0 = -math.log(0.5) + math.log(0.75)
    w1 = -math.log(0.25) + math.log(0.9)
    l0 = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    l1 = -(0.9 * math.log(0.25) + 0.1 * math.log(0.75))
    expected = (w0 * l0 + w1 * l1) / (w0 + w1)
    assert regularized_kd_loss(zs, zt, target, temperature=1.0).item() == pytest.approx(expected, rel=1e-9)


def test_regularized_kd_clips_student_probability():
    # Student nearly certain of the wrong class: p_s(0) ~ e^-20, clipped to 0.005.
    zs, zt = voxels((-10.0, 10.0)), voxels((10.0, -10.0))
    target = torch.tensor([[0]])
    pt0 = 1 / (1 + math.exp(-20))  # teacher's p(0); the student's p(1) equals it by symmetry
    expected = -(pt0 * math.log(0.005) + (1 - pt0) * math.log(pt0))
    assert regularized_kd_loss(zs, zt, target, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_regularized_kd_zero_not_nan_when_all_weights_zero():
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = regularized_kd_loss(z, z.detach(), torch.randint(0, 3, (2, 4, 4)))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(z.grad).all() and (z.grad == 0).all()


def test_regularized_kd_default_temperature_is_ten():
    torch.manual_seed(1)
    zs, zt = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8) * 3
    target = zt.argmax(1)
    assert regularized_kd_loss(zs, zt, target).item() == regularized_kd_loss(zs, zt, target, 10.0).item()


def test_regularized_kd_gradient_only_where_weighted():
    torch.manual_seed(2)
    zs = torch.randn(1, 3, 5, 5, requires_grad=True)
    zt = torch.randn(1, 3, 5, 5)
    target = torch.randint(0, 3, (1, 5, 5))
    regularized_kd_loss(zs, zt, target).backward()
    w = regularization_weights(zs, zt, target)
    assert w.sum() > 0
    assert (zs.grad.abs().sum(1)[w == 0] == 0).all()


# --- contrastive KD ----------------------------------------------------------------------------


def test_contrastive_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    # positives: d(s0,t0)=0, d(s1,t1)=2 -> 0 + 4; negatives: d = sqrt(2) > m=1 -> 0
    assert contrastive_kd_loss(s, t).item() == pytest.approx(1.0)
    # margin 2: negatives contribute (2 - sqrt 2)^2 each
    assert contrastive_kd_loss(s, t, margin=2.0).item() == pytest.approx((4 + 2 * (2 - math.sqrt(2)) ** 2) / 4)


@pytest.mark.parametrize("batch", [2, 16])
def test_equidistant_loss_is_the_minimum_over_equal_distances(batch):
    """Unit embeddings with every student/teacher pair at one distance d: the loss is smallest at d*."""

    def equidistant(d):
        c = d / math.sqrt(2)  # s_i = c e_i + r u, t_j = c e_(B+j) + r u: unit length, all pairs c sqrt(2) apart
        eye = torch.eye(2 * batch + 1, dtype=torch.float64)
        u, r = eye[-1], math.sqrt(1 - c * c)
        return contrastive_kd_loss(c * eye[:batch] + r * u, c * eye[batch : 2 * batch] + r * u).item()

    best = equidistant_loss(batch)
    d_star = (batch - 1) / batch
    assert equidistant(d_star) == pytest.approx(best, rel=1e-9)
    assert equidistant(d_star - 0.05) > best and equidistant(d_star + 0.05) > best
    assert equidistant_loss(16) == pytest.approx(15 / 256)
    with pytest.raises(ValueError, match="batch_size"):
        equidistant_loss(1)


def test_contrastive_batch_permutation_invariant():
    torch.manual_seed(3)
    s = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    t = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    perm = torch.randperm(6)
    assert contrastive_kd_loss(s[perm], t[perm]).item() == pytest.approx(contrastive_kd_loss(s, t).item(), rel=1e-6)
    # ...but pairing a student with another image's teacher changes it
    assert contrastive_kd_loss(s[perm], t).item() != pytest.approx(contrastive_kd_loss(s, t).item(), rel=1e-3)


def test_contrastive_finite_gradient_at_zero_distance():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # negatives at distance 0
    contrastive_kd_loss(s, t).backward()
    assert torch.isfinite(s.grad).all()


def test_infonce_extension():
    e = torch.eye(4)
    assert infonce_kd_loss(e, e, temperature=0.01).item() < 1e-6
    assert infonce_kd_loss(e, e.roll(1, 0), temperature=0.01).item() > 10


# --- KD-Net ------------------------------------------------------------------------------------


def test_feature_kl_and_kdnet():
    f = torch.randn(2, 8, 3, 3)
    assert feature_kl_loss(f, f).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_kl_loss(f, torch.randn(2, 8, 3, 3)).item() > 0
    zs, zt = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    total = kdnet_loss(zs, zt, f, f * 2, temperature=4.0, output_weight=0.3, feature_weight=2.0)
    assert total.item() == pytest.approx(
        0.3 * kd_loss(zs, zt, 4.0).item() + 2.0 * feature_kl_loss(f, f * 2).item(), rel=1e-5
    )
    terms = kdnet_terms(zs, zt, f, f * 2, temperature=4.0, t2_scaling=False)
    assert terms["pixel"].item() == pytest.approx(kd_loss(zs, zt, 4.0, t2_scaling=False).item(), rel=1e-6)
    assert terms["image"].item() == pytest.approx(feature_kl_loss(f, f * 2).item(), rel=1e-6)


def test_feature_kl_by_hand():
    """KL(softmax(f_t) || softmax(f_s)) over channels: the same closed form as KD's at T = 1."""
    fs, ft = voxels((0.0, 0.0)), voxels((LN3, 0.0))
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert feature_kl_loss(fs, ft).item() == pytest.approx(kl, rel=1e-9)


# --- ProtoKD ------------------------------------------------------------------------------------

R2 = 1.0 / math.sqrt(2.0)


def row(*vectors: tuple[float, float]) -> torch.Tensor:
    """Two-channel features of a row of voxels, shape (1, 2, N)."""
    return torch.tensor(vectors, dtype=torch.float64).t().unsqueeze(0)


@pytest.mark.parametrize(
    "student, teacher, labels, expected",
    [
        # each class one voxel: the student's maps [[1, 0], [0, 1]]; the teacher's voxel 1 at 45
        # degrees to class 0's prototype (1, 0): maps [[1, R2], [R2, 1]]; mean of (0, R2^2, R2^2, 0)
        (row((1, 0), (0, 1)), row((1, 0), (1, 1)), [[0, 1]], 0.25),
        # the same features for both networks, or the teacher's scaled by 3: no difference
        (row((1, 0), (0, 1)), row((3, 0), (0, 3)), [[0, 1]], 0.0),
        # class 1 absent from the second image: left out for the whole batch, only class 0 counts
        (
            torch.cat([row((1, 0), (0, 1)), row((1, 0), (0, 1))]),
            torch.cat([row((1, 0), (0, 1)), row((1, 0), (1, 0))]),
            [[0, 1], [0, 0]],
            # image 1, class 0 prototype (1, 0) for both: student maps (1, 0), teacher (1, 0);
            # image 2, student prototype (1, 1)/2: maps (R2, R2); teacher (1, 0): maps (1, 1)
            2 * (1 - R2) ** 2 / 4,
        ),
    ],
)
def test_prototype_loss_by_hand(student, teacher, labels, expected):
    labels = torch.tensor(labels)
    assert prototype_loss(student, teacher, labels, num_classes=2).item() == pytest.approx(expected, abs=1e-9)


def test_prototype_maps_leave_out_a_class_missing_from_one_image():
    features = torch.randn(2, 4, 3, 3)
    labels = torch.zeros(2, 3, 3, dtype=torch.long)
    labels[0, 0, 0] = labels[1, 2, 2] = 1
    labels[0, 1, 1] = 2  # class 2 only in the first image
    _, kept = prototype_maps(features, labels, num_classes=3)
    assert kept == [0, 1]
    assert prototype_loss(features, features, torch.full((2, 3, 3), 2), num_classes=2).item() == 0.0  # none kept


def test_protokd_kd_is_the_authors_mean_over_classes_without_t2():
    zs, zt = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(2, 4, 5, 5, dtype=torch.float64)
    theirs = torch.nn.functional.kl_div(
        torch.log_softmax(zs / 10.0, 1), torch.softmax(zt / 10.0, 1), reduction="none"
    ).mean()
    assert protokd_kd_loss(zs, zt).item() == pytest.approx(theirs.item(), rel=1e-12)


# --- robustness and gradients ------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_finite_with_extreme_logits(scale):
    torch.manual_seed(4)
    zs = (torch.randn(2, 4, 6, 6) * scale).requires_grad_()
    zt = torch.randn(2, 4, 6, 6) * scale
    target = torch.randint(0, 4, (2, 6, 6))
    for loss in (
        segmentation_loss(zs, target),
        kd_loss(zs, zt, 10.0),
        regularized_kd_loss(zs, zt, target),
        kdnet_loss(zs, zt, zs, zt),
    ):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, zs)
        assert torch.isfinite(grad).all()


def test_gradchecks():
    torch.manual_seed(5)
    zt = torch.randn(1, 3, 3, 3, dtype=torch.float64) * 2
    target = zt.argmax(1)
    zs = (torch.randn(1, 3, 3, 3, dtype=torch.float64) * 0.5).requires_grad_()
    check = {}  # float64 throughout: gradcheck's default, strict tolerances
    assert torch.autograd.gradcheck(lambda z: kd_loss(z, zt, 2.0).double(), (zs,), **check)
    # The regularized loss treats its weights as constants (stop-gradient), so finite differences,
    # which also move the weights, do not apply: compare with the formula at frozen weights instead.
    w = regularization_weights(zs, zt, target)
    assert w.sum() > 0

    def frozen(z):
        pt, ps = torch.softmax(zt / 2.0, 1), torch.softmax(z / 2.0, 1)
        return (w * -(pt * torch.log(ps.clamp(0.005, 1))).sum(1)).sum() / w.sum()

    (expected,) = torch.autograd.grad(frozen(zs), zs)
    (actual,) = torch.autograd.grad(regularized_kd_loss(zs, zt, target, 2.0), zs)
    assert torch.allclose(actual, expected, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(frozen, (zs,))
    assert torch.autograd.gradcheck(lambda z: segmentation_loss(z, target).double(), (zs,), **check)
    s = torch.nn.functional.normalize(torch.randn(4, 5, dtype=torch.float64), dim=1).requires_grad_()
    t = torch.nn.functional.normalize(torch.randn(4, 5, dtype=torch.float64), dim=1)
    assert torch.autograd.gradcheck(lambda x: contrastive_kd_loss(x, t, margin=1.5).double(), (s,), **check)
    f = torch.randn(2, 3, 4, 4, dtype=torch.float64).requires_grad_()
    labels = torch.randint(0, 2, (2, 4, 4))
    labels[:, 0, 0], labels[:, 0, 1] = 0, 1  # both classes in both images
    g = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: prototype_loss(x, g, labels, num_classes=2), (f,), **check)
