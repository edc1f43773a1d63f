"""The optimiser's parameter groups and learning-rate schedule, as in the reference code.

The reference (TensorFlow 1) adds ``1e-5 * tf.nn.l2_loss(v) = 1e-5 * ||v||^2 / 2`` to the loss for
every trainable variable whose name contains ``/kernel``: the kernels of the convolutions and of the
projection heads' dense layers, not the convolution biases and not the instance norms' scale and
shift. Its learning rate follows the poly schedule ``1e-3 * (1 - epoch / 200) ** 0.9``, set once per
epoch of 300 iterations.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

#: Layers whose ``weight`` is a kernel, decayed as the reference decays its ``/kernel`` variables:
#: convolutions of any dimension, transposed ones too, and dense layers.
KERNEL_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def decay_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Optimiser parameter groups: weight decay on the kernels only, none on anything else.

    A kernel is the ``weight`` of a convolution (``Conv1d/2d/3d``, ``ConvTranspose*``) or of a dense
    layer (``nn.Linear``, the projection heads' layers): what the reference code's L2 term covers
    (its variables named ``.../kernel``). Biases, the instance norms' affine parameters and any other
    parameter get no decay. A parameter shared by several modules is listed once; the order of the
    parameters is that of ``modules`` and their ``named_parameters``.

    With ``torch.optim.SGD``, ``weight_decay=wd`` adds ``wd * W`` to the gradient of ``W``: exactly
    the gradient of the reference's ``wd * ||W||^2 / 2``, so the reference's 1e-5 is the value to
    pass. ``torch.optim.Adam``'s ``weight_decay`` is the same coupled L2 term, added to the gradient
    before Adam's moment estimates (so, unlike AdamW's decoupled decay, it is rescaled with the
    gradient).

    Args:
        modules: the trained modules (the network, the projection heads).
        weight_decay: the L2 coefficient for the kernels (1e-5 in the reference).

    Returns:
        ``[{"params": kernels, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]``,
        leaving out a group with no parameters; pass it to ``torch.optim.SGD`` or ``Adam``.

    Raises:
        ValueError: a negative ``weight_decay``.

    Examples:
        A convolution's kernel is decayed, its bias and the norm's scale and shift are not:

        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, affine=True))
        >>> decayed, plain = decay_groups([net], 1e-5)
        >>> [tuple(p.shape) for p in decayed["params"]], decayed["weight_decay"]
        ([(2, 1, 3, 3)], 1e-05)
        >>> [tuple(p.shape) for p in plain["params"]], plain["weight_decay"]
        ([(2,), (2,), (2,)], 0.0)
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be 0 or positive, got {weight_decay}")
    kernels: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for layer in module.modules():
            for name, param in layer.named_parameters(recurse=False):
                if id(param) in seen:
                    continue
                seen.add(id(param))
                is_kernel = isinstance(layer, KERNEL_LAYERS) and name == "weight"
                (kernels if is_kernel else others).append(param)
    groups = [{"params": kernels, "weight_decay": float(weight_decay)}, {"params": others, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def poly_lr(lr: float, step: int, steps: int, every: int = 1, power: float = 0.9) -> float:
    """The poly schedule, held constant within each block of ``every`` steps.

    ``lr * (1 - floor(step / every) * every / steps) ** power``. With ``every = 1`` it changes at
    every step; the reference code sets it once per epoch (``every = 300`` iterations, over
    ``steps = 60,000``: ``(1 - epoch / 200) ** 0.9``).

    Args:
        lr: the initial learning rate.
        step: the step about to be taken (0 for the first).
        steps: the run's total number of steps.
        every: steps between learning-rate updates (at least 1).
        power: the exponent (0.9 in the reference).

    Returns:
        The learning rate of ``step``; 0 from ``steps`` on.

    Raises:
        ValueError: ``steps`` or ``every`` under 1, or a negative ``step``.

    Examples:
        >>> poly_lr(1e-3, 0, 60_000, every=300) == poly_lr(1e-3, 299, 60_000, every=300) == 1e-3
        True
        >>> poly_lr(1e-3, 300, 60_000, every=300) == 1e-3 * (1 - 1 / 200) ** 0.9  # epoch 1 of 200
        True
        >>> poly_lr(1.0, 5, 10)  # every step: (1 - 5/10) ** 0.9
        0.5358867312681466
    """
    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be at least 1, got steps={steps}, every={every}")
    if step < 0:
        raise ValueError(f"step must be 0 or positive, got {step}")
    held = (step // every) * every
    return lr * max(0.0, 1.0 - held / steps) ** power
