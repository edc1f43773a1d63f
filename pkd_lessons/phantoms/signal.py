"""MR signal equations that turn tissue properties into image contrast.

Tissues are described by proton density ``pd`` (relative), and relaxation times ``t1`` and ``t2``
in milliseconds. The sequences below are the textbook steady-state forms (e.g. Bernstein, King &
Zhou, *Handbook of MRI Pulse Sequences*, 2004); they are enough to make every contrast of the
lessons appear for the right physical reason: fluid bright on T2, nulled on FLAIR, gadolinium
shortening T1 so that enhancing tissue lights up on T1ce and scar on LGE.
"""

from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | float


def spin_echo(pd: ArrayLike, t1: ArrayLike, t2: ArrayLike, tr: float, te: float) -> np.ndarray:
    """Spin echo: ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``.

    Short TR and TE give T1 weighting; long TR and TE give T2 weighting.
    """
    return np.asarray(pd * (1.0 - np.exp(-tr / t1)) * np.exp(-te / t2))


def inversion_recovery(pd: ArrayLike, t1: ArrayLike, t2: ArrayLike, ti: float, tr: float, te: float) -> np.ndarray:
    """Magnitude inversion recovery: ``S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``.

    A tissue is nulled when ``TI = T1 ln(2 / (1 + exp(-TR/T1)))``: FLAIR nulls CSF this way,
    and late gadolinium enhancement nulls healthy myocardium.
    """
    return np.asarray(pd * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2))


def null_time(t1: float, tr: float) -> float:
    """Inversion time that nulls a tissue of longitudinal relaxation ``t1`` (ms).

    Examples:
        FLAIR: the inversion time that nulls CSF (T1 about 4000 ms) leaves white matter visible,
        whereas a T2-weighted spin echo shows CSF brightest:

        >>> import numpy as np
        >>> pd, t1, t2 = np.array([1.0, 0.7]), np.array([4000.0, 800.0]), np.array([2000.0, 80.0])  # CSF, WM
        >>> ti = null_time(t1=4000.0, tr=9000.0)
        >>> round(ti, 1)
        2371.8
        >>> [round(float(s), 3) for s in inversion_recovery(pd, t1, t2, ti=ti, tr=9000.0, te=100.0)]
        [0.0, 0.18]
        >>> [round(float(s), 3) for s in spin_echo(pd, t1, t2, tr=5000.0, te=100.0)]
        [0.679, 0.2]
    """
    return float(t1 * np.log(2.0 / (1.0 + np.exp(-tr / t1))))


def bssfp(pd: ArrayLike, t1: ArrayLike, t2: ArrayLike, flip_deg: float, te: float) -> np.ndarray:
    """Balanced steady-state free precession (on resonance):
    ``S = PD sin(a) / ((1 + cos a) + (1 - cos a) T1/T2) exp(-TE/T2)``.

    The contrast follows T2/T1, which is why blood is bright and myocardium dark on cine images.
    """
    a = np.deg2rad(flip_deg)
    return np.asarray(pd * np.sin(a) / ((1 + np.cos(a)) + (1 - np.cos(a)) * t1 / t2) * np.exp(-te / t2))


def t1_with_contrast(t1: ArrayLike, concentration_mm: ArrayLike, r1: float = 4.5) -> np.ndarray:
    """Longitudinal relaxation time after gadolinium: ``1/T1' = 1/T1 + r1 C``.

    Args:
        t1: native T1 in ms.
        concentration_mm: tissue gadolinium concentration in mmol/l.
        r1: relaxivity in 1/(mmol/l * s); 4.5 is typical of gadolinium chelates at 1.5-3 T.

    Returns:
        Post-contrast T1 in ms.
    """
    return np.asarray(1.0 / (1.0 / np.asarray(t1) + r1 * 1e-3 * np.asarray(concentration_mm)))
