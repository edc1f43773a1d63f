"""Static figures of the data: modalities with outlines, annotation noise, intensities by class.

All functions return a matplotlib figure, so they render in executed notebooks, on GitHub and in
the lessons' summary alike. Interactive viewers build on the same pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from scipy import ndimage
from scipy.stats import mannwhitneyu

from pkd_lessons.data.volumes import CaseVolume

REGION_COLOURS = ("#ffd60a", "#ff4d6d", "#4cc9f0", "#80ed99", "#c77dff")


def best_slice(volume: CaseVolume, axis: int = 2) -> int:
    """Index of the slice showing the most of every region (the middle slice if unlabelled).

    Region areas are summed, so nested regions (tumour core, scar) weigh in as well as the largest.
    """
    classes = volume.truth if volume.truth is not None else volume.label
    if classes is None or not classes.any():
        return volume.shape[axis] // 2
    other = tuple(a + 1 for a in range(3) if a != axis)
    regions = volume.convention.to_regions(classes)
    area = regions.sum(axis=other) / np.maximum(regions.sum(axis=other).max(axis=1, keepdims=True), 1)
    return int(np.argmax(area.sum(axis=0)))


def _take(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(array, index, axis=axis).T  # NIfTI's first axis shown left-right


def _display(volume: CaseVolume, channel: int, axis: int, index: int) -> np.ndarray:
    """A slice ready to show: background (outside the brain) set to the darkest brain value."""
    image = volume.image[channel]
    inside = image[volume.mask]
    floor = float(np.percentile(inside, 0.5)) if inside.size else 0.0
    return _take(np.where(volume.mask, np.maximum(image, floor), floor), axis, index)


def _outline(ax, regions: np.ndarray, names: Sequence[str], linestyle: str = "-") -> None:
    # Innermost regions first, so that an outer region's outline stays visible where they touch.
    for region, colour in reversed(list(zip(regions, REGION_COLOURS[: len(names)]))):
        if region.any():
            ax.contour(region.astype(float), levels=[0.5], colors=[colour], linewidths=1.0, linestyles=linestyle)


def show_modalities(
    volume: CaseVolume, index: int | None = None, axis: int = 2, outline: str | None = "truth", size: float = 2.6
) -> plt.Figure:
    """Every modality of a case at one slice, with the region outlines on top.

    Args:
        volume: loaded case.
        index: slice index; the slice with most foreground when None.
        axis: slicing axis.
        outline: ``"truth"``, ``"label"`` or None.
        size: inches per panel.

    Returns:
        The figure.
    """
    index = best_slice(volume, axis) if index is None else index
    n = len(volume.modalities)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.1), squeeze=False)
    regions = volume.regions(outline) if outline else None
    for c, (ax, name) in enumerate(zip(axes[0], volume.modalities)):
        ax.imshow(_display(volume, c, axis, index), cmap="gray", origin="lower")
        if regions is not None:
            _outline(ax, [_take(r, axis, index) for r in regions], volume.convention.region_names)
        ax.set_title(name)
        ax.axis("off")
    if regions is not None:
        handles = [plt.Line2D([], [], color=c, label=r) for r, c in zip(volume.convention.region_names, REGION_COLOURS)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"{volume.case_id}, slice {index}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.92))
    return fig


def show_annotation_noise(
    volume: CaseVolume, index: int | None = None, axis: int = 2, modality: int = 0, size: float = 3.0
) -> plt.Figure:
    """The rater's label against the clean truth: where a human drew differently.

    Three panels: the truth's outlines, the rater's outlines, and the voxels where they disagree
    (red: rater added, blue: rater missed) over the first region (whole tumour / LV).
    """
    if volume.label is None or volume.truth is None:
        raise ValueError(f"{volume.case_id} needs both a label and a truth")
    index = best_slice(volume, axis) if index is None else index
    image = _display(volume, modality, axis, index)
    truth = [_take(r, axis, index) for r in volume.regions("truth")]
    label = [_take(r, axis, index) for r in volume.regions("label")]
    names = volume.convention.region_names
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size * 1.1))
    for ax, regions, title in zip(axes[:2], (truth, label), ("clean truth", "rater's label")):
        ax.imshow(image, cmap="gray", origin="lower")
        _outline(ax, regions, names)
        ax.set_title(title)
    diff = np.zeros(image.shape, np.uint8)
    diff[label[0] & ~truth[0]] = 1
    diff[truth[0] & ~label[0]] = 2
    axes[2].imshow(image, cmap="gray", origin="lower")
    axes[2].imshow(
        np.ma.masked_equal(diff, 0),
        cmap=ListedColormap(["#ef233c", "#4361ee"]),
        vmin=1,
        vmax=2,
        origin="lower",
        interpolation="nearest",
    )
    axes[2].set_title(f"{names[0]}: where the rater differs")
    for ax in axes:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=r) for r, c in zip(names, REGION_COLOURS)]
    handles += [Patch(color="#ef233c", label="rater added"), Patch(color="#4361ee", label="rater missed")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.suptitle(f"{volume.case_id}, slice {index}, on {volume.modalities[modality]}: outlines by region")
    fig.tight_layout(rect=(0, 0.07, 1, 0.92))
    return fig


def class_intensities(
    volumes: Sequence[CaseVolume], max_voxels: int = 20000, seed: int = 0, around_mm: float | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Normalised intensities of each class in each modality (a random sample per case).

    Healthy foreground voxels form the ``"healthy"`` class. With ``around_mm``, the healthy voxels
    within that distance of the lesion (every labelled class together) also form the class
    ``"around the lesion"``: the tissue a network has to tell the lesion's outer edge from, which on
    real and phantom data alike is mostly white matter pushed aside by the lesion.

    Args:
        volumes: cases with labels (the clean truth where there is one).
        max_voxels: the most voxels drawn per class and case.
        seed: seed of the draw.
        around_mm: width of the ``"around the lesion"`` shell in mm, or None for no such class.

    Returns:
        modality -> class name -> 1-D array of intensities.

    Raises:
        ValueError: ``around_mm`` is not positive.
    """
    if around_mm is not None and around_mm <= 0:
        raise ValueError(f"around_mm must be positive (a distance in mm), got {around_mm}")
    rng = np.random.default_rng(seed)
    first = volumes[0]
    names = ("healthy",) + first.convention.class_names[1:]
    extra = ("around the lesion",) if around_mm is not None else ()
    out = {m: {n: [] for n in names + extra} for m in first.modalities}
    for v in volumes:
        classes = v.truth if v.truth is not None else v.label
        members = [(classes == k) & v.mask for k in range(len(names))]
        if around_mm is not None and not (classes > 0).any():  # no lesion: nothing around it
            members.append(np.zeros_like(v.mask, dtype=bool))
        elif around_mm is not None:
            distance = ndimage.distance_transform_edt(classes == 0, sampling=v.spacing)
            members.append((classes == 0) & v.mask & (distance <= around_mm))
        for name, member in zip(names + extra, members):
            where = np.flatnonzero(member.ravel())
            if len(where) > max_voxels:
                where = rng.choice(where, max_voxels, replace=False)
            for m, channel in zip(v.modalities, v.image):
                out[m][name].append(channel.ravel()[where])
    return {m: {n: np.concatenate(vals) for n, vals in d.items()} for m, d in out.items()}


def plot_class_histograms(intensities: dict[str, dict[str, np.ndarray]], size: float = 3.0) -> plt.Figure:
    """One histogram panel per modality with a curve per class (from :func:`class_intensities`)."""
    mods = list(intensities)
    fig, axes = plt.subplots(1, len(mods), figsize=(size * len(mods), size), sharey=True)
    bins = np.linspace(-3, 8, 111)
    for ax, m in zip(np.atleast_1d(axes), mods):
        for name, values in intensities[m].items():
            if len(values):
                ax.hist(values, bins=bins, density=True, histtype="step", label=name, linewidth=1.3)
        ax.set_title(m)
        ax.set_xlabel("intensity (z-score within the brain)")
    np.atleast_1d(axes)[0].set_ylabel("share of the class's voxels (density)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def separability(intensities: dict[str, dict[str, np.ndarray]], a: str, b: str) -> dict[str, float]:
    """How well one modality's intensity alone separates two classes, per modality.

    The area under the ROC curve of a threshold on intensity (0.5: no information, 1.0: perfectly
    separable): the Mann-Whitney U statistic over the number of pairs (ties count half), taken in
    the direction that separates, ``max(AUC, 1 - AUC)``.
    """
    out = {}
    for m, d in intensities.items():
        x, y = d[a], d[b]
        if len(x) == 0 or len(y) == 0:
            out[m] = float("nan")
            continue
        auc = mannwhitneyu(x, y).statistic / (len(x) * len(y))
        out[m] = float(max(auc, 1 - auc))
    return out


def show_predictions(
    volume: CaseVolume,
    predictions: dict[str, np.ndarray],
    modality: str | None = None,
    index: int | None = None,
    axis: int = 2,
    size: float = 2.8,
) -> plt.Figure:
    """The truth and each prediction outlined on one slice, side by side.

    Args:
        volume: the case.
        predictions: name -> class map of the volume's shape.
        modality: the image shown underneath (default: the first).
        index: slice (default: the one with most labelled voxels).
        axis: slicing axis.
        size: inches per panel.
    """
    index = best_slice(volume, axis) if index is None else index
    channel = volume.modalities.index(modality) if modality else 0
    image = _display(volume, channel, axis, index)
    maps = {"truth": volume.truth, **predictions}
    names = volume.convention.region_names
    fig, axes = plt.subplots(1, len(maps), figsize=(size * len(maps), size * 1.1), squeeze=False)
    for ax, (title, classes) in zip(axes[0], maps.items()):
        ax.imshow(image, cmap="gray", origin="lower")
        _outline(ax, [_take(r, axis, index) for r in volume.convention.to_regions(classes)], names)
        ax.set_title(title)
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=r) for r, c in zip(names, REGION_COLOURS)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"{volume.case_id}, slice {index}, on {volume.modalities[channel]}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.92))
    return fig


def compare_students(
    volume: CaseVolume,
    predictions: dict[str, np.ndarray],
    modality: str | None = None,
    index: int | None = None,
    region: str = "WT",
    axis: int = 2,
    size: float = 2.6,
) -> plt.Figure:
    """Students side by side on one slice: each one's outlines (top row), and where it is wrong about
    one region (bottom row), with the truth's outline of that region drawn over its errors.

    Args:
        volume: the case (with its truth).
        predictions: name -> class map of the volume's shape, e.g. ``{"baseline": ..., "pkl": ...}``.
        modality: the image shown underneath (default: the first).
        index: slice (default: the one with most labelled voxels).
        region: the region whose errors the bottom row shows.
        axis: slicing axis.
        size: inches per panel.

    Returns:
        The figure; each bottom panel's title counts the region's missed and extra voxels on the slice.
    """
    index = best_slice(volume, axis) if index is None else index
    channel = volume.modalities.index(modality) if modality else 0
    image = _display(volume, channel, axis, index)
    names = volume.convention.region_names
    r = names.index(region)
    truth = _take(volume.convention.to_regions(volume.truth)[r], axis, index)
    fig, axes = plt.subplots(2, len(predictions), figsize=(size * len(predictions), size * 2.15), squeeze=False)
    for (top, bottom), (title, classes) in zip(axes.T, predictions.items()):
        regions = volume.convention.to_regions(classes)
        top.imshow(image, cmap="gray", origin="lower")
        _outline(top, [_take(x, axis, index) for x in regions], names)
        top.set_title(title)
        predicted = _take(regions[r], axis, index)
        errors = np.zeros(truth.shape, dtype=int)
        errors[truth & ~predicted] = 1  # missed
        errors[predicted & ~truth] = 2  # extra
        bottom.imshow(image, cmap="gray", origin="lower")
        bottom.imshow(
            np.ma.masked_equal(errors, 0), cmap=ListedColormap(["#4cc9f0", "#ff4d6d"]), vmin=1, vmax=2, origin="lower"
        )
        if truth.any():
            bottom.contour(truth.astype(float), levels=[0.5], colors=["white"], linewidths=0.8)
        bottom.set_title(f"{region}: {int((errors == 1).sum())} missed, {int((errors == 2).sum())} extra", fontsize=9)
        for ax in (top, bottom):
            ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=n) for n, c in zip(names, REGION_COLOURS)]
    handles += [
        Patch(color="#4cc9f0", label=f"{region} missed"),
        Patch(color="#ff4d6d", label=f"{region} extra"),
        plt.Line2D([], [], color="0.6", label=f"{region} truth (white outline)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.text(0.5, 0.995, f"{volume.case_id}, slice {index}, on {volume.modalities[channel]}", ha="center", va="top")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig
