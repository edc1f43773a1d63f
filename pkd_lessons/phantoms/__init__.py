"""Phantom data sets that stand in for BraTS and MyoPS when no real data is at hand.

Both are written as NIfTI in the real data sets' own layouts, so the loader of
:mod:`pkd_lessons.data` reads phantoms and real data through the same code.

Example:
    >>> from pkd_lessons.phantoms import make_phantoms
    >>> folder = make_phantoms("brain", "data/brain", cases=8, seed=0)  # doctest: +SKIP
"""

from pkd_lessons.phantoms.sets import KINDS, ensure_phantoms, make_phantoms, read_manifest

__all__ = ["KINDS", "ensure_phantoms", "make_phantoms", "read_manifest"]
