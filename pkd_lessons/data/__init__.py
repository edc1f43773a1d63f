"""Data: find cases in real and phantom folders, check and normalise them, serve slices and crops.

Example:
    Find the cases of a folder, load them, and serve the student's 2D slices. Here the folder is a
    one-case cardiac phantom in the MyoPS layout (seed 11 draws a quick case of three slices); a
    BraTS folder (``find_cases("data/brain")``) is read the same way, and its student sees ``t1ce``:

    >>> import tempfile
    >>> from pkd_lessons.data import SliceDataset, find_cases, load_cases, student_modality
    >>> from pkd_lessons.phantoms import make_phantoms
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     cases = find_cases(make_phantoms("cardiac", f"{tmp}/heart", cases=1, seed=11, progress=False))
    ...     volumes = load_cases(cases, progress=False)
    >>> cases[0].case_id, cases[0].layout, volumes[0].modalities, volumes[0].shape
    ('myops_training_101', 'myops', ('bssfp', 'lge', 't2'), (96, 96, 3))
    >>> student_slices = SliceDataset(volumes, modalities=(student_modality(volumes[0].modalities),))
    >>> item = student_slices[0]
    >>> student_slices.modalities, len(student_slices), tuple(item["image"].shape), tuple(item["label"].shape)
    (('lge',), 3, (1, 96, 96), (96, 96))
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".datasets": "CropDataset SliceDataset split_cases",
        ".layouts": "BRAIN_MODALITIES HEART_MODALITIES LAYOUTS STUDENT_MODALITY Case ImageRef Layout anatomy "
        "find_cases student_modality",
        ".normalize": "zscore_percentile",
        ".volumes": "CaseVolume load_case load_cases",
    },
)
