"""Figures of the training lessons: curves, the regularization weight map, embeddings, attention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from pkd_lessons.losses import regularization_weights


def plot_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]], terms: Sequence[str] = ("loss",), smooth: int = 10
) -> plt.Figure:
    """Loss curves of several runs (moving average over ``smooth`` steps), one panel per term.

    Each run keeps one colour in every panel, and a panel's legend names only the runs that have
    that term (the baseline has no distillation term, for instance).
    """
    colours = {name: f"C{i}" for i, name in enumerate(histories)}
    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for name, hist in histories.items():
            values = np.asarray(hist.get(term, []), dtype=float)
            if values.size == 0:
                continue
            k = max(1, min(smooth, values.size))
            ax.plot(
                np.arange(k, values.size + 1),
                np.convolve(values, np.ones(k) / k, mode="valid"),
                label=name,
                linewidth=1.2,
                color=colours[name],
            )
        ax.set_title(f"{term} loss")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{term} (moving average of {smooth} steps)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_training(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    regions: Sequence[str] = ("WT", "TC", "ET"),
    smooth: int = 20,
) -> plt.Figure:
    """Training loss and validation Dice side by side, as in MONAI's BraTS tutorial.

    Left: each run's total loss per step (moving average). Right: each run's validation Dice per
    region against the step. In both panels a line style stands for a run and, on the right, a
    colour for a region; the legends sit under the panels, clear of the curves' last steps.

    Args:
        histories: run name -> history (``loss`` per step; ``val_step`` and ``val_<region>``).
        regions: regions to draw.
        smooth: moving-average window of the loss, in steps.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    styles = ["-", "--", ":", "-."]
    for i, (name, hist) in enumerate(histories.items()):
        loss = np.asarray(hist.get("loss", []), dtype=float)
        if loss.size:
            k = max(1, min(smooth, loss.size))
            left.plot(
                np.arange(k, loss.size + 1),
                np.convolve(loss, np.ones(k) / k, mode="valid"),
                label=name,
                color="0.25",
                linestyle=styles[i % len(styles)],
                linewidth=1.2,
            )
        steps = hist.get("val_step", [])
        for j, region in enumerate(regions):
            values = hist.get(f"val_{region}", [])
            if len(values):
                right.plot(
                    steps,
                    values,
                    marker="o",
                    markersize=3,
                    color=f"C{j}",
                    linestyle=styles[i % len(styles)],
                    label=f"{name}: {region}" if len(histories) > 1 else region,
                )
    left.set(xlabel="step", ylabel=f"training loss (moving average of {smooth})", title="training loss")
    right.set(xlabel="step", ylabel="Dice on the validation cases", title="validation Dice", ylim=(0, 1))
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    return fig


def plateau_reading(
    history: Mapping[str, Sequence[float]],
    regions: Sequence[str] = ("WT", "TC", "ET"),
    tolerance: float = 0.02,
    last: int | None = None,
) -> str:
    """A sentence saying, from the validation curve alone, whether a run has stopped improving.

    The run counts as plateaued when its validation Dice, averaged over ``regions``, changed by
    less than ``tolerance`` (2 Dice points) between the mean of the last ``last`` validations
    and the mean of the ``last`` before them, and as still improving when it rose by more.
    By default ``last`` is a third of the validations (at least 2), so that the two windows cover
    the later two thirds of training and never the first validations, taken while every run is
    still in its initial rise (with 6 validations, halves would put the first one in the
    comparison).

    Returns:
        The sentence, with the numbers it is based on.
    """
    steps = list(history.get("val_step", []))
    curves = [np.asarray(history.get(f"val_{r}", []), dtype=float) for r in regions]
    last = max(2, len(steps) // 3) if last is None else last
    if len(steps) < 2 * last or any(c.size != len(steps) for c in curves):
        return f"Too few validation points ({len(steps)}) to tell whether this run has converged (need {2 * last})."
    mean = np.mean(curves, axis=0)
    before, after = mean[-2 * last : -last].mean(), mean[-last:].mean()
    change = after - before
    where = f"steps {int(steps[-2 * last])}-{int(steps[-last - 1])} vs {int(steps[-last])}-{int(steps[-1])}"
    text = (
        f"Mean validation Dice ({'/'.join(regions)}) {100 * before:.1f} -> {100 * after:.1f} "
        f"({100 * change:+.1f} points, {where}): "
    )
    if abs(round(100 * change, 1)) < 100 * tolerance:  # decided on the number the sentence prints
        return text + f"plateaued (changed by less than {100 * tolerance:.0f} points)."
    if change > 0:
        return text + "still improving: longer training would likely raise it."
    return (
        text + "it fell: the last steps made the validation cases worse (noise or over-fitting to the rater's labels)."
    )


def weight_map_figure(
    image: np.ndarray, truth: np.ndarray, student_logits: torch.Tensor, teacher_logits: torch.Tensor, size: float = 2.8
) -> tuple[plt.Figure, dict]:
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
    panels = [
        (image, "student's input", "gray"),
        (ce_s, "student's CE(y, p_s)", "magma"),
        (teacher_wrong, "teacher wrong (w forced to 0)", "gray"),
        (w, "weight w_i", "magma"),
    ]
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
    numbers = {
        "weighted share": float((w > 0).mean()),
        "teacher wrong share": float(teacher_wrong.mean()),
        "top 1% weight share": float(flat[:top].sum() / flat.sum()) if flat.sum() > 0 else float("nan"),
    }
    return fig, numbers


def pca_2d(points: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (NumPy's SVD; no extra dependency)."""
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embedding_figure(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], size: float = 3.6) -> plt.Figure:
    """Student (circles) and teacher (crosses) embeddings of the same images, a grey line joining
    each image's pair (short lines: the student places the image where the teacher does).

    Args:
        pairs: panel title -> ``(student (B, D), teacher (B, D))``; one panel each, projected together
            onto their first two principal components.
    """
    fig, axes = plt.subplots(1, len(pairs), figsize=(size * len(pairs), size), squeeze=False)
    for ax, (title, (s, t)) in zip(axes[0], pairs.items()):
        xy = pca_2d(np.concatenate([s, t]))
        ps, pt = xy[: len(s)], xy[len(s) :]
        for a, b in zip(ps, pt):
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.6", alpha=0.6, linewidth=0.8)
        ax.scatter(ps[:, 0], ps[:, 1], color="C0", marker="o", s=18, label="student")
        ax.scatter(pt[:, 0], pt[:, 1], color="C1", marker="x", s=24, label="teacher")
        ax.set_title(title, fontsize=9)
        ax.set(xlabel="principal component 1", ylabel="principal component 2", xticks=[], yticks=[])
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def pair_distances(s: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """Mean Euclidean distance of positive pairs (same image) and of negative pairs (different images)."""
    d = np.linalg.norm(s[:, None] - t[None], axis=-1)
    eye = np.eye(len(s), dtype=bool)
    return {"positive": float(d[eye].mean()), "negative": float(d[~eye].mean())}


def retrieval(s: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """How often a student embedding's nearest teacher embedding is its own image's.

    With ``N`` images, an embedding that carries no information about the image finds its own
    teacher embedding by chance ``1/N`` of the time; the one-sided binomial test (SciPy's
    ``binomtest``) says how surprising the observed count is under that chance.

    Args:
        s: student embeddings ``(N, D)``.
        t: teacher embeddings of the same images, ``(N, D)``.

    Returns:
        ``hits`` (images whose nearest teacher embedding is their own), ``n``, ``chance`` (the
        expected hits, 1) and ``p_value``.
    """
    from scipy.stats import binomtest

    d = np.linalg.norm(s[:, None] - t[None], axis=-1)
    n = len(s)
    hits = int((d.argmin(axis=1) == np.arange(n)).sum())
    return {
        "hits": hits,
        "n": n,
        "chance": 1.0,
        "p_value": float(binomtest(hits, n, 1 / n, alternative="greater").pvalue) if n > 1 else 1.0,
    }


def attention_figure(
    image: np.ndarray,
    attention: np.ndarray,
    modalities: Sequence[str],
    size: float = 2.6,
    truth: np.ndarray | None = None,
) -> plt.Figure:
    """The teacher's fusion weights at the finest scale: one map per modality, in [0, 1].

    Args:
        image: the slice shown first (one modality).
        attention: ``(M, H, W)`` weights.
        modalities: their names.
        size: inches per panel.
        truth: an optional ``(H, W)`` tumour mask, outlined in white on every panel.
    """
    fig, axes = plt.subplots(1, len(modalities) + 1, figsize=(size * (len(modalities) + 1), size * 1.1))
    axes[0].imshow(image.T, cmap="gray", origin="lower")
    axes[0].set_title("input (first modality)", fontsize=9)
    for ax, m, a in zip(axes[1:], modalities, attention):
        im = ax.imshow(a.T, cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_title(f"weight of {m}", fontsize=9)
    for ax in axes:
        if truth is not None and truth.any():
            ax.contour(truth.T.astype(float), levels=[0.5], colors=["white"], linewidths=0.7)
        ax.axis("off")
    fig.colorbar(
        im, ax=axes[-1], fraction=0.046, label="fusion weight" + (" (white: tumour)" if truth is not None else "")
    )
    fig.tight_layout()
    return fig


def benchmark_figure(report: Mapping) -> plt.Figure:
    """Training throughput of each method in a benchmark report, model step beside training step.

    Args:
        report: what :func:`pkd_lessons.training.benchmark.benchmark` returned (or its saved JSON).

    Returns:
        One horizontal bar pair per method: (a) the model step alone and (b) the whole training step
        with the data pipeline, in slices (2D) or crops (3D) per second; the gap between the bars is
        what the pipeline costs.
    """
    methods = list(report["results"])
    unit = report.get("unit", "slice")  # reports written before the unit was recorded are 2D
    y = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.55 * len(methods)))
    for offset, key, label in (
        (-0.18, f"model_step_{unit}s_per_s", "(a) model step"),
        (0.18, f"train_step_{unit}s_per_s", "(b) training step"),
    ):
        values = [report["results"][m][key] for m in methods]
        bars = ax.barh(y + offset, values, height=0.34, label=label)
        ax.bar_label(bars, fmt="%.3g", padding=2, fontsize=8)
    ax.set_yticks(y, methods)
    ax.invert_yaxis()
    ax.set_xlabel(f"{unit}s per second")
    ax.set_title(f"{report['device']}, batch {report['batch_size']}, {report['dtype']}", fontsize=10)
    ax.margins(x=0.15)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def forest_plot(
    rows: Sequence[Mapping], scale: float = 100.0, unit: str = "Dice points", size: float = 3.2
) -> plt.Figure:
    """Paired differences from the baseline with their 95 % intervals, one panel per region.

    Each method is one line: its mean difference (dot) and crossed interval (bar). Behind it, a grey
    band spans plus and minus the comparison's detectable difference (80 % power): a true effect
    inside the band would often go unseen. A dashed line marks no difference. Methods whose
    interval excludes 0 are drawn in colour (blue better, red worse), the others in black.

    Args:
        rows: :func:`~pkd_lessons.evaluation.statistics.compare` rows (``method``, ``region``,
            ``diff``, ``low``, ``high``, ``detectable``, ``verdict``).
        scale: 100 for Dice in points.
        unit: the axis's unit.
        size: inches per panel.

    Returns:
        The figure.
    """
    regions = list(dict.fromkeys(r["region"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colour = {"better": "#1d70b8", "worse": "#d4351c"}
    fig, axes = plt.subplots(1, len(regions), figsize=(size * len(regions), 0.45 * len(methods) + 1.3), squeeze=False)
    for ax, region in zip(axes[0], regions):
        for y, method in enumerate(methods):
            row = next((r for r in rows if r["method"] == method and r["region"] == region), None)
            if row is None:
                continue
            d = scale * row["detectable"]
            ax.barh(y, 2 * d, left=-d, height=0.6, color="0.88", zorder=0)
            c = colour.get(row["verdict"], "black")
            ax.errorbar(
                scale * row["diff"],
                y,
                xerr=[[scale * (row["diff"] - row["low"])], [scale * (row["high"] - row["diff"])]],
                fmt="o",
                color=c,
                capsize=3,
                markersize=4,
            )
        ax.axvline(0, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(methods)), methods if ax is axes[0][0] else [""] * len(methods))
        ax.invert_yaxis()
        ax.set_title(region)
    handles = [
        plt.Line2D([], [], marker="o", color="black", label="mean and 95 % interval"),
        plt.Rectangle((0, 0), 1, 1, color="0.88", label="detectable difference (80 % power)"),
        plt.Line2D([], [], marker="o", color=colour["better"], label="better"),
        plt.Line2D([], [], marker="o", color=colour["worse"], label="worse"),
    ]
    fig.supxlabel(f"difference from the baseline ({unit})", y=0.1, fontsize=9)
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
