"""Predict whole volumes and score them per case: Dice and HD95 of every region (MONAI's metrics).

2D networks predict a volume slice by slice; 3D networks by MONAI's sliding window with overlap.
Scores are against the clean truth where the data set has one (the phantoms), against the official
labels otherwise.

**Brain mask.** BraTS images are skull-stripped: every voxel outside the brain is 0, and no tumour
can lie there. By default a prediction outside the case's brain mask (its nonzero voxels) is set to
background before scoring, the convention of BraTS evaluations; ``brain_mask=False`` scores the raw
prediction. For cardiac data the mask is the whole field of view, so nothing changes.

**Windows over the brain.** A 2D network trained on windows predicts each slice by sliding them
over the box around the slice's brain (:func:`brain_box`), not over the whole slice: on the brain
phantoms 2.2x fewer windows, nearly all of them on brain. The windows sit elsewhere than on the
whole slice's grid, so a prediction differs from that one where the windows' outputs overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn
from tqdm.auto import tqdm

from pkd_lessons.data.labels import LabelConvention
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.evaluation.metrics import hd95, pooled_hd95, region_dice
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.precision import Precision


@torch.no_grad()
def predict_volume(
    model: nn.Module,
    volume: CaseVolume,
    modalities: Sequence[str],
    spatial_dims: int = 2,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    roi_size: Sequence[int] = (64, 64, 64),
    overlap: float = 0.5,
    precision: Precision | None = None,
    return_logits: bool = False,
    brain_mask: bool = True,
    slices: Sequence[int] | None = None,
    window: Sequence[int] | None = None,
) -> np.ndarray:
    """Class map (or logits) of a whole volume.

    Args:
        model: a trained network returning ``(logits, features)``.
        volume: the case.
        modalities: the modalities the network takes, in order.
        spatial_dims: 2 (axial slices, along the last axis) or 3 (sliding window).
        device: where to run.
        batch_size: slices per forward pass (2D) or windows per pass (3D).
        roi_size: 3D window size.
        overlap: 3D window overlap (0.5 in the paper).
        precision: autocast precision, or None for float32.
        return_logits: return ``(K, X, Y, Z)`` float logits instead of classes.
        brain_mask: set the classes outside the case's brain mask to background (see the module
            docstring); the logits are returned as computed.
        slices: 2D only: predict only these axial slices (the others are background); None: every
            slice that holds brain.
        window: 2D only: predict each slice by MONAI's sliding window of this ``(h, w)`` size at
            ``overlap`` (Gaussian weights), or None for whole slices. A network trained on windows
            predicts with the same windows, as the reference code's 80^3 crops and sliding window
            do: instance normalisation makes its output depend on the field of view (measured: a
            T1ce student trained on 64x64 windows, WT Dice 67 on whole slices and 75 by windows).
            With ``brain_mask`` (and no ``return_logits``) the windows slide over each slice's
            :func:`brain_box` instead of the whole slice.

    Returns:
        ``(X, Y, Z)`` ``uint8`` classes, or the logits.
    """
    device = torch.device(device)
    model.eval()
    channels = [volume.modalities.index(m) for m in modalities]
    image = torch.from_numpy(volume.image[channels]).float()
    autocast = precision.autocast(device) if precision else torch.autocast(device.type, enabled=False)
    if spatial_dims == 2:
        # Slices without brain are background whatever the network says there, unless asked for.
        wanted = (
            np.asarray(slices, dtype=int)
            if slices is not None
            else np.flatnonzero(volume.mask.any(axis=(0, 1)))
            if brain_mask and not return_logits
            else np.arange(image.shape[-1])
        )
        whole = (slice(None), slice(None))
        if window is not None and brain_mask and not return_logits:
            # each slice's field of view: the box its windows need to cover its brain (none: no brain)
            boxes = [brain_box(volume.mask[..., z], window, overlap) for z in wanted]
            cuts = {i: _box_slices(box) for i, box in enumerate(boxes) if box is not None}
        else:
            cuts = {i: whole for i in range(len(wanted))}
        shapes = {i: image[(0, *cut, 0)].shape for i, cut in cuts.items()}
        logits = None
        for shape in dict.fromkeys(shapes.values()):  # slices of one box shape go through together
            members = [i for i in cuts if shapes[i] == shape]
            for start in range(0, len(members), batch_size):
                group = members[start : start + batch_size]
                part = torch.stack([image[(slice(None), *cuts[i], int(wanted[i]))] for i in group])
                with autocast:
                    if window is None:
                        out, _ = model(part.to(device))
                    else:
                        out = sliding_window_inference(
                            part.to(device),
                            tuple(window),
                            batch_size,
                            lambda x: model(x)[0],
                            overlap=overlap,
                            mode="gaussian",
                        )
                out = out.float().cpu()
                if logits is None:
                    logits = torch.zeros((out.shape[1], *image.shape[1:]))
                    logits[0] = 1.0  # what is not predicted: background
                for j, i in enumerate(group):
                    logits[(slice(None), *cuts[i], int(wanted[i]))] = out[j]
        if logits is None:
            logits = torch.zeros((int(getattr(model, "num_classes", 1)), *image.shape[1:]))
            logits[0] = 1.0
    else:
        roi = [min(r, s) for r, s in zip(roi_size, image.shape[1:])]
        with autocast:
            logits = sliding_window_inference(
                image[None].to(device), roi, batch_size, lambda x: model(x)[0], overlap=overlap, mode="gaussian"
            )
        logits = logits[0].float().cpu()
    if return_logits:
        return logits.numpy()
    classes = logits.max(0).indices.numpy().astype(np.uint8)  # argmax's first maximum, 10x faster on a CPU
    if brain_mask:
        classes[~volume.mask] = 0
    return classes


def brain_box(
    mask: np.ndarray, window: Sequence[int], overlap: float = 0.5
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where a slice's sliding windows go: the smallest box that holds the slice's brain and takes
    as many windows as the brain's extent needs (MONAI's scan interval, ``window * (1 - overlap)``).

    Voxels outside the brain are set to background whatever a window predicts there, so sliding over
    this box instead of the whole slice skips the windows that mostly hold background (on the brain
    phantoms, 2.2x fewer windows per case). The box is centred on the brain and kept inside the
    slice.

    Args:
        mask: ``(X, Y)`` brain voxels of one slice.
        window: ``(h, w)`` window size.
        overlap: the sliding window's overlap.

    Returns:
        ``((x0, y0), (size_x, size_y))``, or None where the slice holds no brain.

    Examples:
        A 10-voxel brain in a 100-voxel row, windows of 16 at overlap 0.5 (interval 8): one window,
        centred on the brain; a 20-voxel brain needs two windows, so its box is 16 + 8 = 24 long:

        >>> import numpy as np
        >>> mask = np.zeros((100, 1), bool)
        >>> mask[40:50] = True
        >>> brain_box(mask, (16, 1))
        ((37, 0), (16, 1))
        >>> mask[40:60] = True
        >>> brain_box(mask, (16, 1))
        ((38, 0), (24, 1))
    """
    if not mask.any():
        return None
    corner, size = [], []
    for axis, win in enumerate(window):
        along = np.flatnonzero(mask.any(axis=1 - axis))
        low, extent, full = int(along[0]), int(along[-1] - along[0] + 1), mask.shape[axis]
        step = max(int(win * (1 - overlap)), 1)
        length = min(win + step * max(math.ceil((extent - win) / step), 0), full)
        corner.append(min(max(low - (length - extent) // 2, 0), full - length))
        size.append(length)
    return tuple(corner), tuple(size)


def _box_slices(box: tuple[tuple[int, int], tuple[int, int]]) -> tuple[slice, slice]:
    """The ``(x, y)`` slices of a :func:`brain_box`."""
    (x0, y0), (sx, sy) = box
    return slice(x0, x0 + sx), slice(y0, y0 + sy)


def inference_window(cfg: TrainConfig) -> dict:
    """How a run predicts: the field of view it trained on (:func:`predict_volume`'s keywords).

    Args:
        cfg: the run's training settings.

    Returns:
        ``{"spatial_dims", "roi_size", "window"}``: 3D runs slide ``cfg.crop``; 2D runs trained on
        windows (``cfg.slice_crop``) slide those windows over each slice, 2D runs trained on whole
        slices predict whole slices.
    """
    window = cfg.slice_crop if cfg.spatial_dims == 2 else None
    return {"spatial_dims": cfg.spatial_dims, "roi_size": cfg.crop, "window": window}


def score_case(
    prediction: np.ndarray,
    truth: np.ndarray,
    convention: LabelConvention,
    spacing: Sequence[float],
    pooled: bool = False,
) -> dict[str, dict[str, float]]:
    """Dice and 95th-percentile Hausdorff distance (mm) of every region.

    Empty regions follow the BraTS convention: absent from both prediction and truth, Dice 1 and
    HD95 0; absent from one only, Dice 0 and HD95 the length of the volume's diagonal (the worst
    possible distance) instead of MONAI's NaN/inf, so that means stay finite. On BraTS's
    240 x 240 x 155 grid at 1 mm the diagonal is 373.1 mm, the 373 the official evaluation writes
    for an infinite HD95.

    Args:
        prediction: class map.
        truth: class map.
        convention: regions to score.
        spacing: voxel size in mm (HD95 is in mm).
        pooled: also ``"hd95_pooled"``, HD95 as the official BraTS evaluation computes it
            (:func:`~pkd_lessons.evaluation.metrics.pooled_hd95`; same empty-region conventions).

    Returns:
        region -> ``{"dice": ..., "hd95": ...}`` (and ``"hd95_pooled"``).
    """
    dice = region_dice(prediction, truth, convention)
    worst = math.sqrt(sum((n * s) ** 2 for n, s in zip(prediction.shape, spacing)))
    # Distances do not depend on the empty background: cut both maps to the box around everything
    # either labels, with a margin of 2 voxels so that no boundary touches the cut (same result, a
    # fraction of the distance-transform work).
    anything = np.argwhere((prediction > 0) | (truth > 0))
    if len(anything):
        lo = np.maximum(anything.min(0) - 2, 0)
        hi = anything.max(0) + 3
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        prediction, truth = prediction[box], truth[box]
    pred, ref = convention.to_regions(prediction), convention.to_regions(truth)
    out = {}
    for r, name in enumerate(convention.region_names):
        both = bool(pred[r].any()) and bool(ref[r].any())
        empty = 0.0 if not (pred[r].any() or ref[r].any()) else worst
        out[name] = {"dice": dice[name], "hd95": hd95(pred[r], ref[r], spacing) if both else empty}
        if pooled:
            out[name]["hd95_pooled"] = pooled_hd95(pred[r], ref[r], spacing) if both else empty
    return out


def evaluate(
    model: nn.Module,
    cfg: TrainConfig,
    volumes: Sequence[CaseVolume],
    device: str | torch.device = "cpu",
    progress: bool = True,
    name: str | None = None,
    precision: Precision | None = None,
    brain_mask: bool = True,
) -> dict:
    """Score a trained network on every case.

    Args:
        model: the network.
        cfg: its training config (modalities, dimensions).
        volumes: cases to score (held out from training).
        device: where to run.
        progress: progress bar.
        name: run name recorded with the metrics (default: the method).
        precision: autocast precision for inference.
        brain_mask: predictions outside the brain are background (see the module docstring).

    Returns:
        A metrics record: ``{"run", "method", "seed", "modality", "cases": {case: {region: {dice, hd95}}}}``.
    """
    device = torch.device(device)
    model.to(device)
    cases = {}
    for v in tqdm(volumes, desc=f"evaluate {name or cfg.method}", unit="case", disable=not progress, leave=False):
        if v.truth is None:
            raise ValueError(f"{v.case_id} has no labels to score against")
        how = inference_window(cfg)
        pred = predict_volume(
            model, v, cfg.input_modalities, device=device, precision=precision, brain_mask=brain_mask, **how
        )
        cases[v.case_id] = score_case(pred, v.truth, v.convention, v.spacing)
    return {
        "run": name or cfg.method,
        "method": cfg.method,
        "seed": cfg.seed,
        "brain_mask": brain_mask,
        "modality": cfg.modality if cfg.is_student else "+".join(cfg.modalities),
        "cases": cases,
    }


def validation_dice(
    model: nn.Module,
    cfg: TrainConfig,
    volumes: Sequence[CaseVolume],
    device: str | torch.device = "cpu",
    precision: Precision | None = None,
) -> dict[str, float]:
    """Mean Dice per region over validation cases, inside the brain: the curve of a training run.

    Cheaper than :func:`evaluate` (no HD95); the network is left in eval mode.

    Returns:
        region -> mean Dice.
    """
    scores = [
        region_dice(
            predict_volume(model, v, cfg.input_modalities, device=device, precision=precision, **inference_window(cfg)),
            v.truth,
            v.convention,
        )
        for v in volumes
    ]
    return {r: float(np.mean([s[r] for s in scores])) for r in scores[0]}


def mean_dice(record: dict) -> dict[str, float]:
    """Mean Dice over the cases of a metrics record, per region."""
    regions = next(iter(record["cases"].values())).keys()
    return {r: float(np.mean([c[r]["dice"] for c in record["cases"].values()])) for r in regions}
