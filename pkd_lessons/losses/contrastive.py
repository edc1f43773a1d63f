"""Image-level contrastive distillation between student and teacher embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pkd_lessons.losses.segmentation import full


def _check_embeddings(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> None:
    if student_emb.ndim != 2 or student_emb.shape != teacher_emb.shape:
        raise ValueError(
            f"embeddings must both be (B, D) of the same shape, got {tuple(student_emb.shape)} "
            f"and {tuple(teacher_emb.shape)}"
        )


def pairwise_sq_distances(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """``D2[i, j] = ||s_i - t_j||^2`` for every student/teacher pair, shape ``(B, B)``."""
    diff = full(student_emb)[:, None, :] - full(teacher_emb)[None, :, :]
    return (diff * diff).sum(dim=-1)


def contrastive_kd_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The paper's image-level contrastive distillation loss (Hadsell et al., 2006), as in the reference code.

    Over all ``B*B`` pairs ``(student_i, teacher_j)`` of a batch, positive when ``i == j`` (the same
    image seen by both networks), negative otherwise:

    ``L_ckd = mean_{i,j} [ y_ij d_ij^2 + (1 - y_ij) max(0, m - d_ij)^2 ]``,
    ``d_ij = ||s_i - t_j||_2``, ``y_ij = [i == j]``.

    It pulls a student's embedding onto the teacher's embedding of the same image and pushes it at
    least ``m`` away from the teacher's embeddings of other images, so the student inherits the
    teacher's *arrangement* of images, not only its per-voxel outputs. Embeddings are expected
    L2-normalised (distances in [0, 2]); no temperature, no memory bank.

    Args:
        student_emb: ``(B, D)``.
        teacher_emb: ``(B, D)``.
        margin: ``m``.

    Returns:
        Scalar loss.

    Examples:
        A student whose embeddings sit on the teacher's, with different images at distance
        ``sqrt(2) > m``, pays nothing. A collapsed student (one embedding for every image) pays the
        full margin on each of the ``B (B - 1)`` negative pairs, ``(B - 1) / B`` on average:

        >>> import torch
        >>> teacher = torch.eye(2)  # (B, D): two images, L2-normalised
        >>> float(contrastive_kd_loss(teacher.clone(), teacher))
        0.0
        >>> collapsed = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> round(float(contrastive_kd_loss(collapsed, collapsed)), 4)
        0.5
        >>> equidistant_loss(2)  # the best a head does without telling the two images apart
        0.25
    """
    _check_embeddings(student_emb, teacher_emb)
    d2 = pairwise_sq_distances(student_emb, teacher_emb)
    positive = torch.eye(len(d2), dtype=torch.bool, device=d2.device)
    # sqrt has an infinite slope at 0: keep d away from 0 where only d (not d^2) is used.
    d = torch.sqrt(torch.clamp(d2, min=1e-12))
    loss = torch.where(positive, d2, torch.clamp(margin - d, min=0.0) ** 2)
    return loss.mean()


def equidistant_loss(batch_size: int, margin: float = 1.0) -> float:
    """The lowest :func:`contrastive_kd_loss` a head reaches without telling images apart.

    If every pair of a batch of ``B`` images lies at the same distance ``d`` (the embedding carries
    no information about which image it came from), the loss is
    ``L(d) = [d^2 + (B - 1) (m - d)^2] / B``, smallest at ``d* = m (B - 1) / B`` with
    ``L(d*) = m^2 (B - 1) / B^2`` (0.0586 for ``B = 16``, ``m = 1``). A training curve that stays near
    this value has found the equidistant solution; only a loss below it shows that the embeddings
    separate images.

    Args:
        batch_size: ``B``, images per batch.
        margin: ``m``.

    Returns:
        ``m^2 (B - 1) / B^2``.

    Raises:
        ValueError: a batch of fewer than 2 images or a margin that is not positive.

    Examples:
        The value quoted above for the paper's batch of 16, and the exact value for a batch of 2:

        >>> round(equidistant_loss(16), 4)
        0.0586
        >>> equidistant_loss(2)
        0.25
    """
    if batch_size < 2 or margin <= 0:
        raise ValueError(f"batch_size must be at least 2 and margin positive, got {batch_size} and {margin}")
    return margin**2 * (batch_size - 1) / batch_size**2


def infonce_kd_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """**Extension, not in the paper**: an InfoNCE (CRD/CLIP-style) image-level loss.

    ``L = mean_i -log( exp(s_i . t_i / tau) / sum_j exp(s_i . t_j / tau) )``: each student embedding
    must pick its own image's teacher embedding out of the batch. Compared with the paper's margin
    loss it uses every negative at once, weighted by how confusable it is.

    Args:
        student_emb: ``(B, D)``, L2-normalised.
        teacher_emb: ``(B, D)``, L2-normalised.
        temperature: ``tau``.

    Returns:
        Scalar loss.

    Examples:
        Each student embedding picks out its own teacher embedding: a loss near 0. Collapsed
        embeddings leave a uniform guess among the ``B`` images, ``log B`` (``log 4 = 1.3863``):

        >>> import torch
        >>> round(float(infonce_kd_loss(torch.eye(4), torch.eye(4))), 4)
        0.0001
        >>> collapsed = torch.full((4, 4), 0.5)  # four identical unit vectors
        >>> round(float(infonce_kd_loss(collapsed, collapsed)), 4)
        1.3863
    """
    _check_embeddings(student_emb, teacher_emb)
    logits = full(student_emb) @ full(teacher_emb).t() / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
