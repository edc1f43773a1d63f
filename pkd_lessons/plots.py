"""Figures of the training lessons: curves, the regularization weight map, embeddings, attention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from pkd_lessons.losses import regularization_weights


def plot_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], terms: Sequence[str] = ("loss",),
                smooth: int = 10) -> plt.Figure:
    """Loss curves of several runs (moving average over ``smooth`` steps), one panel per term."""
    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for name, hist in histories.items():
            values = np.asarray(hist.get(term, []), dtype=float)
            if values.size == 0:
                continue
            k = max(1, min(smooth, values.size))
            ax.plot(np.convolve(values, np.ones(k) / k, mode="valid"), label=name, linewidth=1.2)
        ax.set_title(term)
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def weight_map_figure(image: np.ndarray, truth: np.ndarray, student_logits: torch.Tensor,
                      teacher_logits: torch.Tensor, size: float = 2.8) -> tuple[plt.Figure, dict]:
    """Where the regularized loss looks: the weight ``w_i`` over one slice, with its ingredients.

    Args:
        image: ``(H, W)`` the student's modality.
        truth: ``(H, W)`` label classes used for the weights.
        student_logits: ``(K, H, W)``.
        teacher_logits: ``(K, H, W)``.

    Returns:
        The figure and numbers: share of voxels with ``w > 0``, of voxels where the teacher is wrong,
        and the share of the total weight held by the top 1 % of voxels.
    """
    t = torch.as_tensor(truth).long()[None]
    zs, zt = student_logits[None].float(), teacher_logits[None].float()
    w = regularization_weights(zs, zt, t)[0].numpy()
    ce_s = -torch.log_softmax(zs, 1).gather(1, t[:, None])[0, 0].numpy()
    teacher_wrong = (zt.argmax(1) != t)[0].numpy()
    panels = [(image, "student's input", "gray"), (ce_s, "student's CE(y, p_s)", "magma"),
              (teacher_wrong, "teacher wrong (w forced to 0)", "gray"), (w, "weight w_i", "magma")]
    fig, axes = plt.subplots(1, 4, figsize=(4 * size, size * 1.15))
    for ax, (arr, title, cmap) in zip(axes, panels):
        im = ax.imshow(np.asarray(arr, dtype=float).T, cmap=cmap, origin="lower")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        if cmap == "magma":
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    flat = np.sort(w.ravel())[::-1]
    top = max(1, int(0.01 * flat.size))
    numbers = {"weighted share": float((w > 0).mean()), "teacher wrong share": float(teacher_wrong.mean()),
               "top 1% weight share": float(flat[:top].sum() / flat.sum()) if flat.sum() > 0 else float("nan")}
    return fig, numbers


def pca_2d(points: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (NumPy's SVD; no extra dependency)."""
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embedding_figure(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], size: float = 3.6) -> plt.Figure:
    """Student (circles) and teacher (crosses) embeddings of the same images, a line joining each pair.

    Args:
        pairs: panel title -> ``(student (B, D), teacher (B, D))``; one panel each, projected together
            onto their first two principal components.
    """
    fig, axes = plt.subplots(1, len(pairs), figsize=(size * len(pairs), size), squeeze=False)
    for ax, (title, (s, t)) in zip(axes[0], pairs.items()):
        xy = pca_2d(np.concatenate([s, t]))
        ps, pt = xy[: len(s)], xy[len(s):]
        colours = plt.cm.viridis(np.linspace(0, 1, len(s)))
        for a, b, c in zip(ps, pt, colours):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=c, alpha=0.4, linewidth=0.8)
        ax.scatter(ps[:, 0], ps[:, 1], c=colours, marker="o", s=18, label="student")
        ax.scatter(pt[:, 0], pt[:, 1], c=colours, marker="x", s=24, label="teacher")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def pair_distances(s: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """Mean Euclidean distance of positive pairs (same image) and of negative pairs (different images)."""
    d = np.linalg.norm(s[:, None] - t[None], axis=-1)
    eye = np.eye(len(s), dtype=bool)
    return {"positive": float(d[eye].mean()), "negative": float(d[~eye].mean())}


def attention_figure(image: np.ndarray, attention: np.ndarray, modalities: Sequence[str],
                     size: float = 2.6) -> plt.Figure:
    """The teacher's fusion weights at the finest scale: one map per modality, in [0, 1]."""
    fig, axes = plt.subplots(1, len(modalities) + 1, figsize=(size * (len(modalities) + 1), size * 1.1))
    axes[0].imshow(image.T, cmap="gray", origin="lower")
    axes[0].set_title("input (first modality)", fontsize=9)
    for ax, m, a in zip(axes[1:], modalities, attention):
        im = ax.imshow(a.T, cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_title(f"weight of {m}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[-1], fraction=0.046)
    fig.tight_layout()
    return fig
