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
    head = ProjectionHead(8, [6] * dims)
    emb = head(features)
    assert emb.shape == (5, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    # Window 3 (half of 6) at stride 1: 4 positions per axis, 8 channels, flattened.
    assert head.window == (3,) * dims and head.mlp[0].in_features == 8 * 4**dims
    # The reference's dense layers have no bias: two kernels are all the head learns.
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 and all(m.bias is None for m in linears)
    assert sorted(head.state_dict()) == ["mlp.0.weight", "mlp.2.weight"]
    with pytest.raises(ValueError, match="embeds"):
        head(torch.randn(5, 8, *([7] * dims)))


def test_projection_head_kernels_start_from_the_references_variance_scaling():
    """tf.contrib's variance_scaling_initializer() defaults: He's fan-in normal, truncated at 2 sd,
    drawn with sd sqrt(1.3 * 2 / fan_in) so that the kept values have sd about sqrt(2 / fan_in).
    (PyTorch's own Linear initialisation has sd 1 / sqrt(3 fan_in), 2.4 times smaller.)"""
    torch.manual_seed(0)
    head = ProjectionHead(8, (16, 16), hidden=64, out=32)
    for layer in (head.mlp[0], head.mlp[2]):
        fan_in = layer.in_features
        w = layer.weight.detach()
        assert w.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
        assert w.abs().max().item() <= 2 * (2.6 / fan_in) ** 0.5


def test_projection_head_pooling_by_hand_and_keeps_the_layout():
    # An 80^3 crop pools to 41^3 in the reference; here a 4x4 map with a 2x2 window pools to 3x3.
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    head = ProjectionHead(1, (4, 4))
    pooled = head.pool(x)
    assert pooled.shape == (1, 9)
    assert pooled[0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert pooled[0, 8].item() == pytest.approx((10 + 11 + 14 + 15) / 4)
    # Two images with the same mean but different layouts get different pooled vectors, where a
    # global average pool would give the same one.
    flipped = x.flip(-1)
    assert x.mean() == flipped.mean() and not torch.allclose(head.pool(flipped), pooled)
    assert head.mlp[0].in_features == 9 and head.mlp[2].out_features == 16


def test_fusion_block_by_hand():
    """The reference's fusion: 3x3 conv to one map per modality -> instance norm -> sigmoid; the
    weighted maps -> 1x1 conv -> instance norm -> leaky ReLU."""
    from pkd_lessons.models import AttentionFusion

    torch.manual_seed(0)
    fusion = AttentionFusion(2, channels=3, modalities=2).eval()
    convs = [m for m in fusion.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
    assert (convs[0].in_channels, convs[0].out_channels) == (6, 2) and (
        convs[1].in_channels,
        convs[1].out_channels,
    ) == (6, 3)
    f = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)]
    fused, weights = fusion(f)
    # By hand with the block's own parameters.
    stacked = torch.cat(f, 1)
    a = torch.sigmoid(
        torch.nn.functional.instance_norm(
            convs[0](stacked), weight=fusion.attention.adn.N.weight, bias=fusion.attention.adn.N.bias
        )
    )
    assert torch.allclose(weights, a, atol=1e-5)
    weighted = torch.cat([f[0] * a[:, :1], f[1] * a[:, 1:]], 1)
    expected = torch.nn.functional.leaky_relu(
        torch.nn.functional.instance_norm(
            convs[1](weighted), weight=fusion.project.adn.N.weight, bias=fusion.project.adn.N.bias
        ),
        0.2,
    )
    assert torch.allclose(fused, expected, atol=1e-5)
    # Instance norm before the sigmoid: the attention logits of each map have mean 0 per image.
    logits = torch.logit(weights.double().clamp(1e-9, 1 - 1e-9))
    assert logits.mean((2, 3)).abs().max() < 1e-3 + fusion.attention.adn.N.bias.abs().max()


def test_encoder_dropout_is_the_reference_models_default_and_off_in_eval():
    """0.3, the reference model function's default (its training script feeds 0.0: the faithful preset)."""
    net = student(4, 2, SMALL)
    drops = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(d.p == 0.3 for d in drops)
    assert not any(isinstance(m, torch.nn.Dropout) for m in student(4, 2, SMALL, dropout=0.0).modules())
    net.eval()
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(net(x)[0], net(x)[0])


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


@pytest.mark.parametrize("dims", [2, 3])
def test_strided_blocks_subsample_then_project_as_monais_strided_projection(dims):
    """The encoder's strided residual blocks compute what MONAI's own block does with the same
    weights (the projection subsamples, then convolves at stride 1), and train in the channels-last
    layout, whose strided 1x1 backward pass crashed the process (torch 2.13 on a CPU)."""
    from monai.networks.blocks import UnetResBlock

    from pkd_lessons.models.unet import ACT, NORM, Encoder

    torch.manual_seed(0)
    ours = Encoder(dims, 2, (4, 8), dropout=0.0).stages[1]
    monai_block = UnetResBlock(dims, 4, 8, kernel_size=3, stride=2, norm_name=NORM, act_name=ACT)
    monai_block.load_state_dict(ours.state_dict())  # the same parameter names
    x = torch.randn(2, 4, *[12] * dims)
    torch.testing.assert_close(ours(x), monai_block(x), rtol=0, atol=0)
    if dims == 2:
        net = student(4, 2, (4, 8, 16)).to(memory_format=torch.channels_last)
        net(torch.randn(4, 1, 32, 32).to(memory_format=torch.channels_last))[0].square().mean().backward()
        assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("size", [(64, 64), (9, 7, 6)])
def test_projection_head_pools_as_avg_pool_does(size):
    """The running-sum box filter gives PyTorch's average pooling (window half the input, stride 1)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.randn(3, 2, *size)
    head = ProjectionHead(2, size)
    pool = F.avg_pool2d if len(size) == 2 else F.avg_pool3d
    torch.testing.assert_close(head.pool(x), pool(x, head.window, stride=1).flatten(1))
