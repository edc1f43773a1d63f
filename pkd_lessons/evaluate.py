"""Predict whole volumes and score them per case: Dice and HD95 of every region (MONAI's metrics).

2D networks predict a volume slice by slice; 3D networks by MONAI's sliding window with overlap.
Scores are against the clean truth where the data set has one (the phantoms), against the official
labels otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.metrics import compute_hausdorff_distance
from torch import nn
from tqdm.auto import tqdm

from pkd_lessons.config import TrainConfig
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.labels import LabelConvention
from pkd_lessons.metrics import region_dice
from pkd_lessons.precision import Precision


@torch.no_grad()
def predict_volume(model: nn.Module, volume: CaseVolume, modalities: Sequence[str], spatial_dims: int = 2,
                   device: torch.device | str = "cpu", batch_size: int = 32, roi_size: Sequence[int] = (64, 64, 64),
                   overlap: float = 0.5, precision: Precision | None = None, return_logits: bool = False) -> np.ndarray:
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

    Returns:
        ``(X, Y, Z)`` ``uint8`` classes, or the logits.
    """
    device = torch.device(device)
    model.eval()
    channels = [volume.modalities.index(m) for m in modalities]
    image = torch.from_numpy(volume.image[channels]).float()
    autocast = precision.autocast(device) if precision else torch.autocast(device.type, enabled=False)
    if spatial_dims == 2:
        slices = image.permute(3, 0, 1, 2)  # (Z, C, X, Y)
        parts = []
        for start in range(0, len(slices), batch_size):
            with autocast:
                logits, _ = model(slices[start:start + batch_size].to(device))
            parts.append(logits.float().cpu())
        logits = torch.cat(parts).permute(1, 2, 3, 0)  # (K, X, Y, Z)
    else:
        roi = [min(r, s) for r, s in zip(roi_size, image.shape[1:])]
        with autocast:
            logits = sliding_window_inference(image[None].to(device), roi, batch_size,
                                              lambda x: model(x)[0], overlap=overlap, mode="gaussian")
        logits = logits[0].float().cpu()
    if return_logits:
        return logits.numpy()
    return logits.argmax(0).numpy().astype(np.uint8)


def score_case(prediction: np.ndarray, truth: np.ndarray, convention: LabelConvention,
               spacing: Sequence[float]) -> dict[str, dict[str, float]]:
    """Dice and 95th-percentile Hausdorff distance (mm) of every region.

    Empty regions follow the BraTS convention: absent from both prediction and truth, Dice 1 and
    HD95 0; absent from one only, Dice 0 and HD95 the length of the volume's diagonal (the worst
    possible distance) instead of MONAI's NaN/inf, so that means stay finite.

    Args:
        prediction: class map.
        truth: class map.
        convention: regions to score.
        spacing: voxel size in mm (HD95 is in mm).

    Returns:
        region -> ``{"dice": ..., "hd95": ...}``.
    """
    dice = region_dice(prediction, truth, convention)
    pred = torch.from_numpy(convention.to_regions(prediction))[None].float()
    ref = torch.from_numpy(convention.to_regions(truth))[None].float()
    worst = math.sqrt(sum((n * s) ** 2 for n, s in zip(prediction.shape, spacing)))
    out = {}
    for r, name in enumerate(convention.region_names):
        p_any, t_any = bool(pred[0, r].any()), bool(ref[0, r].any())
        if p_any and t_any:
            with warnings.catch_warnings():  # MONAI warns about one of its own deprecated arguments
                warnings.simplefilter("ignore", FutureWarning)
                hd = float(compute_hausdorff_distance(pred[:, r:r + 1], ref[:, r:r + 1], include_background=True,
                                                      percentile=95, spacing=list(spacing))[0, 0])
        else:
            hd = 0.0 if not (p_any or t_any) else worst
        out[name] = {"dice": dice[name], "hd95": hd}
    return out


def evaluate(model: nn.Module, cfg: TrainConfig, volumes: Sequence[CaseVolume], device: str | torch.device = "cpu",
             progress: bool = True, name: str | None = None, precision: Precision | None = None) -> dict:
    """Score a trained network on every case.

    Args:
        model: the network.
        cfg: its training config (modalities, dimensions).
        volumes: cases to score (held out from training).
        device: where to run.
        progress: progress bar.
        name: run name recorded with the metrics (default: the method).
        precision: autocast precision for inference.

    Returns:
        A metrics record: ``{"run", "method", "seed", "modality", "cases": {case: {region: {dice, hd95}}}}``.
    """
    device = torch.device(device)
    model.to(device)
    cases = {}
    for v in tqdm(volumes, desc=f"evaluate {name or cfg.method}", unit="case", disable=not progress, leave=False):
        if v.truth is None:
            raise ValueError(f"{v.case_id} has no labels to score against")
        pred = predict_volume(model, v, cfg.input_modalities, cfg.spatial_dims, device, roi_size=cfg.crop,
                              precision=precision)
        cases[v.case_id] = score_case(pred, v.truth, v.convention, v.spacing)
    return {"run": name or cfg.method, "method": cfg.method, "seed": cfg.seed,
            "modality": cfg.modality if cfg.is_student else "+".join(cfg.modalities), "cases": cases}


def mean_dice(record: dict) -> dict[str, float]:
    """Mean Dice over the cases of a metrics record, per region."""
    regions = next(iter(record["cases"].values())).keys()
    return {r: float(np.mean([c[r]["dice"] for c in record["cases"].values()])) for r in regions}
