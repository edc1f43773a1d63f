"""Errors raised by pkd_lessons for bad input."""

from __future__ import annotations


class DataError(ValueError):
    """A file or folder cannot be used; the message names it and says what is wrong.

    Raised for missing or unreadable files, images that disagree in shape or orientation,
    non-finite intensities, label values outside a data set's convention, empty folders and
    folders that mix layouts.
    """


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is not finite); the message names the step, the term and
    where the last good checkpoint is."""
