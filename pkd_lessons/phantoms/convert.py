"""Rewrite a BraTS-layout folder in other layouts (Decathlon Task01, BraTS 2023).

The lessons and tests use these to exercise every layout the loader reads with the phantoms, and
the download tests serve the Decathlon copy as a stand-in archive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pkd_lessons.atomic import atomic_dir, atomic_file
from pkd_lessons.data.labels import BRATS, BRATS2023, MSD
from pkd_lessons.data.layouts import BRAIN_MODALITIES, BRATS2023_NAMES, find_cases
from pkd_lessons.data.nifti import read_nifti, write_nifti


def to_msd(brats_folder: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a BraTS-layout folder as a Decathlon ``Task01_BrainTumour`` folder.

    Images become one 4-D file per case (FLAIR, T1w, T1gd, T2w on the last axis) under
    ``imagesTr/``; labels are renumbered to MSD's convention (1 oedema, 2 non-enhancing, 3 enhancing)
    under ``labelsTr/``; a ``dataset.json`` lists them as the Decathlon's does.

    Args:
        brats_folder: folder in BraTS 2017-2021 layout (e.g. a brain phantom set).
        out: the ``Task01_BrainTumour`` folder to write.
        overwrite: replace an existing ``out``.

    Returns:
        ``out``.
    """
    cases = find_cases(brats_folder)
    out = Path(out)
    entries = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for i, case in enumerate(cases, start=1):
            name = f"BRATS_{i:03d}.nii.gz"
            arrays = [read_nifti(case.images[m].path, dtype=np.float32) for m in BRAIN_MODALITIES]
            affine = arrays[0][1]
            stack = np.stack([a for a, _ in arrays], axis=-1).astype(np.float32)
            write_nifti(stack, affine, tmp / "imagesTr" / name)
            label, _ = read_nifti(case.label, dtype=np.float32)
            write_nifti(MSD.from_classes(BRATS.to_classes(label)), affine, tmp / "labelsTr" / name)
            entries.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        meta = {
            "name": "BRATS",
            "tensorImageSize": "4D",
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "numTraining": len(entries),
            "numTest": 0,
            "training": entries,
            "test": [],
        }
        with atomic_file(tmp / "dataset.json") as path:
            path.write_text(json.dumps(meta, indent=1))
    return out


def to_brats2023(brats_folder: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a BraTS 2017-2021 folder in BraTS 2023 naming (``-t2f``, ``-t1n``, ``-t1c``, ``-t2w``;
    enhancing tumour labelled 3)."""
    cases = find_cases(brats_folder)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for i, case in enumerate(cases):
            cid = f"BraTS-GLI-{i:05d}-000"
            for m in BRAIN_MODALITIES:
                array, affine = read_nifti(case.images[m].path, dtype=np.float32)
                write_nifti(array.astype(np.int16), affine, tmp / cid / f"{cid}-{BRATS2023_NAMES[m]}.nii.gz")
            label, affine = read_nifti(case.label, dtype=np.float32)
            write_nifti(BRATS2023.from_classes(BRATS.to_classes(label)), affine, tmp / cid / f"{cid}-seg.nii.gz")
    return out
