"""A published competitor: ProtoKD (Wang et al., ICASSP 2023), as its authors' code computes it.

ProtoKD ("Prototype knowledge distillation for medical segmentation with missing modality")
distils a multimodal teacher into a unimodal student with two terms beside the segmentation loss:

``L = L_seg + 10 L_kd + 0.1 L_proto``, ``T = 10``

- ``L_kd``: the KL divergence of the softened outputs averaged over batch, **classes** and voxels,
  without ``T^2`` (the authors' ``F.kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction="none").mean()``),
  which is :func:`~pkd_lessons.losses.pixel.kd_loss` without ``T^2`` divided by the number of classes;
- ``L_proto`` (:func:`prototype_loss`): for every class present in every image of the batch, the
  per-image prototype of the student's and of the teacher's last decoder features under the
  ground-truth mask, each voxel's cosine similarity to its own network's prototype, and the mean
  squared difference of the student's and the teacher's similarity maps.

The authors' ``prototype_loss`` is written for 3D features only; the same computation over 2D
slices is this package's extension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pkd_lessons.losses.pixel import kd_loss

#: The authors' defaults (``train_protokd.py``: ``--kd_weight 10 --proto_weight 0.1``, ``T = 10``).
KD_WEIGHT, PROTO_WEIGHT, TEMPERATURE = 10.0, 0.1, 10.0
#: ``eps`` of the prototypes' denominators and of the cosine similarity in the authors' code.
EPS = 1e-5


def prototype_maps(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, list[int]]:
    """Each voxel's cosine similarity to its image's class prototypes.

    ``p_k = sum_i f_i [y_i = k] / (sum_i [y_i = k] + eps)``, ``m_k(i) = cos(f_i, p_k)``, for every
    class ``k`` present in **every** image of the batch (a class missing from one image is left out
    for the whole batch, as in the authors' code).

    Args:
        features: ``(B, F, *S)`` last decoder features.
        labels: ``(B, *S)`` or ``(B, 1, *S)`` class indices.
        num_classes: classes, background included.

    Returns:
        ``((B, K, *S) maps, the K classes kept)``; ``K`` may be 0.

    Examples:
        Two images of four voxels whose features point along x where the label is 1 and along y
        elsewhere: every voxel is similar (1) to its own class's prototype and orthogonal (0) to the
        other's. Class 2 is absent, so it is left out:

        >>> import torch
        >>> labels = torch.tensor([[[0, 1], [1, 0]], [[1, 1], [0, 0]]])  # (B, H, W)
        >>> features = torch.stack([labels == 1, labels != 1], dim=1).float()  # (B, 2, H, W)
        >>> maps, kept = prototype_maps(features, labels, num_classes=3)
        >>> kept, tuple(maps.shape)
        ([0, 1], (2, 2, 2, 2))
        >>> maps[0, 1].tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    if labels.dim() == features.dim():
        labels = labels[:, 0]
    if labels.shape != (features.shape[0], *features.shape[2:]):
        raise ValueError(f"labels {tuple(labels.shape)} do not match the features {tuple(features.shape)}")
    space = tuple(range(2, features.dim()))
    maps, kept = [], []
    for k in range(num_classes):
        mask = (labels == k)[:, None].to(features.dtype)  # (B, 1, *S)
        if not bool((mask.sum(dim=space) > 0).all()):
            continue
        prototype = (features * mask).sum(dim=space) / (mask.sum(dim=space) + EPS)  # (B, F)
        prototype = prototype.reshape(*prototype.shape, *([1] * len(space)))
        maps.append(F.cosine_similarity(features, prototype, dim=1, eps=EPS))
        kept.append(k)
    if not maps:
        return features.new_zeros((features.shape[0], 0, *features.shape[2:])), kept
    return torch.stack(maps, dim=1), kept


def prototype_loss(
    student_features: torch.Tensor, teacher_features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """ProtoKD's prototype term: ``L_proto = mean_{b,k,i} (m_k^s(i) - m_k^t(i))^2``.

    The student's and the teacher's maps (:func:`prototype_maps`, the same ground-truth mask for
    both) over the classes present in every image; 0 when no class is.

    Args:
        student_features: ``(B, F, *S)`` the student's last decoder features.
        teacher_features: ``(B, F', *S)`` the teacher's (no gradient; ``F'`` may differ from ``F``:
            each network is compared with its own prototypes).
        labels: ``(B, *S)`` or ``(B, 1, *S)`` class indices.
        num_classes: classes, background included.

    Returns:
        Scalar loss.

    Examples:
        Features the teacher has too, or has scaled by a positive factor, give the same cosine maps,
        so nothing is left to learn; a student whose features ignore the classes is penalised:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> labels = torch.randint(0, 3, (2, 6, 6))
        >>> teacher = torch.randn(2, 8, 6, 6)
        >>> float(prototype_loss(teacher, teacher, labels, 3))
        0.0
        >>> bool(prototype_loss(3.0 * teacher, teacher, labels, 3) < 1e-12)
        True
        >>> bool(prototype_loss(torch.ones(2, 8, 6, 6), teacher, labels, 3) > 0)
        True
    """
    maps_s, kept = prototype_maps(student_features, labels, num_classes)
    maps_t, _ = prototype_maps(teacher_features.detach(), labels, num_classes)
    if not kept:
        return student_features.sum() * 0.0  # keeps the graph: a term of 0 with a gradient of 0
    return ((maps_s - maps_t) ** 2).mean()


def protokd_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """ProtoKD's output term: ``mean_{b,c,i} p_t^T(c,i) log(p_t^T(c,i) / p_s^T(c,i))``, no ``T^2``.

    The mean runs over classes as well as voxels, so it is plain KD's
    (:func:`~pkd_lessons.losses.pixel.kd_loss`, ``t2_scaling=False``) divided by the number of
    classes.

    Args:
        student_logits: ``(B, C, *S)``.
        teacher_logits: ``(B, C, *S)`` (no gradient).
        temperature: ``T`` (10 in the authors' configuration).

    Returns:
        Scalar loss.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> z_s, z_t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
        >>> import torch.nn.functional as F
        >>> theirs = F.kl_div(F.log_softmax(z_s / 10, 1), F.softmax(z_t / 10, 1), reduction="none").mean()
        >>> bool(torch.isclose(protokd_kd_loss(z_s, z_t), theirs))
        True
    """
    return kd_loss(student_logits, teacher_logits, temperature, t2_scaling=False) / student_logits.shape[1]
