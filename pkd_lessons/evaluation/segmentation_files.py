"""Segmentations as files in the data set's own format: written from a checkpoint, scored from disk.

:func:`predict_folder` runs a trained network over every case of a data folder and writes one
NIfTI label file per case, as the data set's challenge expects it:

* **values** in the folder's own label convention (BraTS 2017-2021: 1, 2, 4; BraTS 2023: 1, 2, 3;
  Decathlon: 1 oedema, 2 non-enhancing, 3 enhancing; MyoPS: 500, 600, 200, 1220, 2221), whatever
  the data set the network was trained on;
* **names** from :meth:`~pkd_lessons.data.layouts.Layout.prediction_name` (``BraTS2021_00001.nii.gz``,
  ``BraTS-GLI-00000-000.nii.gz``, ``BRATS_485.nii.gz``, ``myops_test_201_seg.nii.gz``);
* **header** of the case's first input image (:func:`~pkd_lessons.data.nifti.write_like`): affine,
  qform and sform codes, voxel size, so that a viewer lays the file over the scan;
* **field of view** as the run trained: whole 2D slices, 2D windows slid over each slice, or a 3D
  sliding window (:func:`~pkd_lessons.evaluation.prediction.inference_window`).

**Brain mask rule.** For brain data, a voxel that is zero in every image of the case is outside the
skull-stripped brain and is written as background (``brain_mask=False`` keeps the raw prediction),
as in training and ``evaluate``. Where the folder holds every modality, they are all read for the
mask and the intensity normalisation, as in training; a folder of the network's modalities alone (a
T1ce student's T1ce scans) gives the mask and the normalisation of those alone, so its segmentations
can differ slightly. Cardiac images are not masked.

The output folder appears complete or not at all, with ``predictions.json`` beside the files: the
checkpoint, its method and modalities, the label values written and the code's provenance.
:func:`score_folder` reads such a folder back and scores it against the data folder's labels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pkd_lessons.atomic import atomic_dir
from pkd_lessons.data.layouts import LAYOUTS, Case, anatomy, find_cases
from pkd_lessons.data.nifti import read_nifti, write_like
from pkd_lessons.data.volumes import CaseVolume, load_case
from pkd_lessons.errors import DataError
from pkd_lessons.evaluation.lesion_wise import lesion_wise_scores
from pkd_lessons.evaluation.prediction import inference_window, predict_volume, score_case

MANIFEST = "predictions.json"


def _check_anatomy(checkpoint: Path, modalities: Sequence[str], data: Path, cases: list[Case]) -> None:
    layout = LAYOUTS[cases[0].layout]
    if anatomy(modalities) != layout.anatomy:
        raise DataError(
            f"{checkpoint}: the network was trained on {anatomy(modalities)} data ({', '.join(modalities)}), "
            f"but {data} holds {layout.anatomy} cases ({layout.name} layout); predict on data of its own kind"
        )


def _chosen(cases: list[Case], only: Collection[str] | None, data: Path) -> list[Case]:
    """The cases named in ``only`` (all for None); a name the folder lacks is an error."""
    if only is None:
        return cases
    if isinstance(only, str) or not only:
        raise ValueError(f"only: give a list of case identifiers, not {only!r}")
    unknown = sorted(set(only) - {c.case_id for c in cases})
    if unknown:
        raise DataError(f"{data}: has no case {', '.join(unknown[:3])}")
    return [c for c in cases if c.case_id in set(only)]


def _check_out(out: Path, data: Path, checkpoint: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds the data or the checkpoint, or one that is not replaceable."""
    for what, path in (("data folder", data), ("checkpoint", checkpoint)):
        if out.resolve() == path.resolve() or out.resolve() in path.resolve().parents:
            raise ValueError(f"{out}: holds the {what} {path}; write the segmentations to a folder of their own")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; choose another folder or allow overwriting (--overwrite)")
        if not (out / MANIFEST).is_file():
            raise FileExistsError(
                f"{out}: not a folder of segmentations written by predict (no {MANIFEST}), so it is not "
                "replaced; choose another folder"
            )


def predict_folder(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    device: str = "auto",
    brain_mask: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    only: Collection[str] | None = None,
) -> list[Path]:
    """Write a network's segmentation of every case of a data folder (see the module docstring).

    Args:
        checkpoint: a checkpoint written by training (``pkd-lessons train``, a lesson's run).
        data: a data folder in any supported layout; labels are not needed, and only the modalities
            the network reads must be there.
        out: the folder to write; it must not exist unless ``overwrite``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        brain_mask: write background outside the brain (the module's brain mask rule).
        overwrite: replace ``out`` if it is a folder of segmentations this function wrote.
        progress: progress bar.
        only: these case identifiers alone (e.g. a split's held-out cases); None: every case.

    Returns:
        The written segmentation files, in case order.

    Raises:
        DataError: the checkpoint or a case cannot be read, a case lacks a modality the network
            reads, or the folder holds the other anatomy.
        FileExistsError: ``out`` exists and ``overwrite`` is False, or it is not a folder of
            segmentations.
        ValueError: ``out`` is, or holds, the data folder or the checkpoint.
    """
    from pkd_lessons.lessons.provenance import provenance
    from pkd_lessons.training.device import pick_device
    from pkd_lessons.training.trainer import load_model

    checkpoint, data, out = Path(checkpoint), Path(data), Path(out)
    _check_out(out, data, checkpoint, overwrite)  # before any work, not after it
    torch_device = pick_device(device)
    model, cfg, state = load_model(checkpoint, torch_device)
    modalities = tuple(cfg.input_modalities)
    try:  # every modality where the folder has them: the brain mask and normalisation of training
        cases = find_cases(data, require_labels=False)
    except DataError:
        try:  # else the network's modalities alone (a student's folder)
            cases = find_cases(data, require_labels=False, modalities=modalities)
        except DataError as err:
            raise DataError(f"{err} (the network, {checkpoint}, reads {', '.join(modalities)})") from err
    _check_anatomy(checkpoint, cfg.modalities, data, cases)
    layout = LAYOUTS[cases[0].layout]
    cases = _chosen(cases, only, data)
    trained = sorted(set(state.get("cases", [])) & {c.case_id for c in cases})
    written = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
            volume = load_case(case)
            classes = predict_volume(
                model, volume, modalities, device=torch_device, brain_mask=brain_mask, **inference_window(cfg)
            )
            name = layout.prediction_name(case.case_id)
            write_like(layout.convention.from_classes(classes), case.images[modalities[0]].path, tmp / name)
            written.append(out / name)
        manifest = {
            "checkpoint": str(checkpoint),
            "method": cfg.method,
            "modalities": list(modalities),
            "modalities_read": list(cases[0].modalities),
            "layout": layout.name,
            "label_values": sorted(layout.convention.values),
            "brain_mask": brain_mask and layout.anatomy == "brain",
            "field_of_view": {k: list(v) if isinstance(v, tuple) else v for k, v in inference_window(cfg).items()},
            "cases": {c.case_id: layout.prediction_name(c.case_id) for c in cases},
            "trained_on": trained,
            "provenance": provenance(),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return written


def _read_classes(path: Path, volume: CaseVolume) -> np.ndarray:
    """The class indices of a segmentation file of ``volume``, checked against its grid."""
    array, affine = read_nifti(path)
    if array.shape != volume.shape or not np.allclose(affine, volume.affine, atol=1e-2):
        raise DataError(
            f"{path}: shape {array.shape} or affine differs from case {volume.case_id}'s images "
            f"{volume.shape}; a segmentation must lie on its case's grid"
        )
    return volume.convention.to_classes(array, source=str(path))


def read_prediction(predictions: str | os.PathLike, volume: CaseVolume) -> np.ndarray:
    """A case's segmentation from a folder :func:`predict_folder` wrote, as class indices.

    Args:
        predictions: the folder (its ``predictions.json`` names each case's file).
        volume: the case, loaded (:func:`~pkd_lessons.data.volumes.load_case`).

    Returns:
        ``(X, Y, Z)`` class indices, as :attr:`CaseVolume.truth` holds them.

    Raises:
        DataError: the folder has no manifest or no file of this case, or the file is off the case's grid.
    """
    predictions = Path(predictions)
    manifest = predictions / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{predictions}: no {MANIFEST}; not a folder written by predict")
    names = json.loads(manifest.read_text())["cases"]
    if volume.case_id not in names:
        raise DataError(f"{predictions}: holds no segmentation of case {volume.case_id}")
    return _read_classes(predictions / names[volume.case_id], volume)


def score_folder(
    predictions: str | os.PathLike,
    data: str | os.PathLike,
    progress: bool = True,
    lesion_wise: bool = False,
    only: Collection[str] | None = None,
) -> dict:
    """Score a folder of segmentation files against a data folder's labels.

    The files are found by the layout's prediction names; each must lie on its case's grid (shape
    and affine) and hold only the data set's label values. Cases the network trained on (listed in
    ``predictions.json``) are left out, as ``evaluate`` leaves them out of a checkpoint's scores.
    Cases with a clean truth (the phantoms) are scored against it, the others against their label
    file, with :func:`score_case` (MONAI's Dice and HD95, the BraTS empty-region conventions), and
    with HD95 as the official BraTS evaluation computes it (``hd95_pooled``).

    Args:
        predictions: the folder (from :func:`predict_folder`, or any tool's output named the same way).
        data: the data folder with the labels.
        progress: progress bar.
        lesion_wise: also score the BraTS 2023 lesion-wise Dice and HD95 of the brain regions
            (:func:`~pkd_lessons.evaluation.lesion_wise.lesion_wise_scores`).
        only: score these case identifiers alone; None: every labelled case.

    Returns:
        A metrics record like :func:`~pkd_lessons.evaluation.prediction.evaluate`'s:
        ``{"run", "method", "seed", "modality", "cases": {case: {region: {"dice", "hd95", "hd95_pooled"}}}}``, with
        ``"lesion_wise": {case: {region: {"dice", "hd95"}}}`` when asked for. Method and modality come
        from ``predictions.json`` where the folder has one.

    Raises:
        DataError: a labelled case has no segmentation file, a file is off its case's grid or holds
            values of another convention, no case of the data folder has labels, or the network
            trained on all of them.
    """
    predictions, data = Path(predictions), Path(data)
    if not predictions.is_dir():
        raise DataError(f"{predictions}: predictions folder not found")
    manifest_path = predictions / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    # the modalities the segmentations were made from are enough (a student's folder)
    cases = _chosen(find_cases(data, require_labels=False, modalities=manifest.get("modalities")), only, data)
    cases = [c for c in cases if c.label is not None or c.truth is not None]
    if not cases:
        raise DataError(f"{data}: no case has a label file to score against")
    trained = sorted(set(manifest.get("trained_on", [])) & {c.case_id for c in cases})
    cases = [c for c in cases if c.case_id not in trained]
    if not cases:
        raise DataError(f"{predictions}: the network trained on every labelled case of {data}; nothing to score")
    layout = LAYOUTS[cases[0].layout]
    if lesion_wise and layout.anatomy != "brain":
        raise DataError(f"{data}: lesion-wise scores are BraTS's, for brain tumours; it holds {layout.anatomy} cases")
    names = [layout.prediction_name(c.case_id) for c in cases]
    missing = [name for name in names if not (predictions / name).is_file()]
    if missing:
        raise DataError(
            f"{predictions}: no segmentation for {len(missing)} of the {len(cases)} labelled cases of {data} "
            f"(expected e.g. {missing[0]}, named as the {layout.name} challenge names them)"
        )
    scores, lesions = {}, {}
    for case, name in tqdm(zip(cases, names), total=len(cases), desc="score", unit="case", disable=not progress):
        volume = load_case(case, normalize=False)
        classes = _read_classes(predictions / name, volume)
        scores[case.case_id] = score_case(classes, volume.truth, layout.convention, volume.spacing, pooled=True)
        if lesion_wise:
            lesions[case.case_id] = lesion_wise_scores(classes, volume.truth, layout.convention, volume.spacing)
    record = {
        "run": predictions.name,
        "method": manifest.get("method", "predictions"),
        "seed": None,
        "modality": "+".join(manifest.get("modalities", [])) or None,
        "predictions": str(predictions),
        "trained_on_left_out": trained,
        "cases": scores,
    }
    if lesion_wise:
        record["lesion_wise"] = lesions
    return record
