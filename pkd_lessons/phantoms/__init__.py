"""Phantom data sets that stand in for BraTS and MyoPS when no real data is at hand.

Both are written as NIfTI in the real data sets' own layouts, so the loader of
:mod:`pkd_lessons.data` reads phantoms and real data through the same code.

Example:
    ``make_phantoms("brain", "data/brain", cases=8, seed=0)`` writes the brain set of the lessons
    (seconds per case). A one-case cardiac set (seed 11 draws a case of three slices, the fewest
    MyoPS has) is quick enough to show what a set holds: the images and labels under MyoPS 2020's
    names (bSSFP ``C0``, LGE ``DE``, ``T2``, the rater's label ``gd`` and, phantoms only, the clean
    truth ``gd_clean``), and a manifest of how it was made:

    >>> import tempfile
    >>> from pkd_lessons.phantoms import make_phantoms, read_manifest
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = make_phantoms("cardiac", f"{tmp}/heart", cases=1, seed=11, progress=False)
    ...     files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.nii.gz"))
    ...     manifest = read_manifest(folder)
    >>> for name in files:
    ...     print(name)
    train25/myops_training_101_C0.nii.gz
    train25/myops_training_101_DE.nii.gz
    train25/myops_training_101_T2.nii.gz
    train25_myops_gd/myops_training_101_gd.nii.gz
    train25_myops_gd/myops_training_101_gd_clean.nii.gz
    >>> manifest["kind"], manifest["cases"], manifest["seed"], manifest["records"][0]["slices"]
    ('cardiac', 1, 11, 3)
"""

from pkd_lessons.phantoms.sets import KINDS, ensure_phantoms, make_phantoms, read_manifest

__all__ = ["KINDS", "ensure_phantoms", "make_phantoms", "read_manifest"]
