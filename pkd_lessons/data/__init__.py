"""Data: find cases in real and phantom folders, check and normalise them, serve slices and crops.

Example:
    >>> from pkd_lessons.data import find_cases, load_cases, SliceDataset
    >>> volumes = load_cases(find_cases("data/brain"))                  # doctest: +SKIP
    >>> student_slices = SliceDataset(volumes, modalities=("t1ce",))     # doctest: +SKIP
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".datasets": "CropDataset SliceDataset split_cases",
        ".layouts": "BRAIN_MODALITIES HEART_MODALITIES STUDENT_MODALITY Case ImageRef find_cases student_modality",
        ".normalize": "zscore_percentile",
        ".volumes": "CaseVolume load_case load_cases",
    },
)
