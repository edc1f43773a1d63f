"""Data: find cases in real and phantom folders, check and normalise them, serve slices and crops.

Example:
    >>> from pkd_lessons.data import find_cases, load_cases, SliceDataset
    >>> volumes = load_cases(find_cases("data/brain"))                  # doctest: +SKIP
    >>> student_slices = SliceDataset(volumes, modalities=("t1ce",))     # doctest: +SKIP
"""

from pkd_lessons.data.datasets import CropDataset, SliceDataset, split_cases
from pkd_lessons.data.layouts import (
    BRAIN_MODALITIES,
    HEART_MODALITIES,
    Case,
    ImageRef,
    find_cases,
)
from pkd_lessons.data.normalize import zscore_percentile
from pkd_lessons.data.volumes import CaseVolume, load_case, load_cases

__all__ = [
    "BRAIN_MODALITIES", "HEART_MODALITIES", "Case", "CaseVolume", "CropDataset", "ImageRef",
    "SliceDataset", "find_cases", "load_case", "load_cases", "split_cases", "zscore_percentile",
]
