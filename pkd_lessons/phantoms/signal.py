"""MR signal equations that turn tissue properties into image contrast.

Tissues are described by proton density ``pd`` (relative), and relaxation times ``t1`` and ``t2``
in milliseconds. The sequences below are the textbook steady-state forms (e.g. Bernstein, King &
Zhou, *Handbook of MRI Pulse Sequences*, 2004); they are enough to make every contrast of the
lessons appear for the right physical reason: fluid bright on T2, nulled on FLAIR, gadolinium
shortening T1 so that enhancing tissue lights up on T1ce and scar on LGE. The magnetization-prepared
gradient echo (MPRAGE, the 3-D T1-weighted sequence most post-contrast scans of BraTS use) is solved
for its steady state exactly, as Deichmann et al. do (*NeuroImage* 12:112, 2000).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


def mprage(
    pd: ArrayLike,
    t1: ArrayLike,
    t2: ArrayLike,
    tr: float,
    ti: float,
    flip_deg: float,
    esp: float,
    readouts: int,
    te: float,
) -> np.ndarray:
    """Magnetization-prepared rapid gradient echo (MPRAGE), magnitude of the k-space centre.

    One cycle of ``tr`` ms is an inversion, a recovery, a train of ``readouts`` small flips ``a``
    every ``esp`` ms (linear ordering: the centre of k-space is the middle readout, ``ti`` ms after
    the inversion) and a recovery until the next inversion. Between events the longitudinal
    magnetization relaxes as ``M -> 1 - (1 - M) exp(-t/T1)`` (relative to ``M0``), a flip maps
    ``M -> M cos a`` and inversion ``M -> -M``. Each is an affine map ``M -> aM + b``, so the cycle
    is one affine map and its steady state ``b / (1 - a)`` is exact (Deichmann et al. 2000, with
    perfect spoiling). The signal is ``PD |M_centre| sin(a) exp(-TE/T2)``.

    Args:
        pd: proton density (relative).
        t1: longitudinal relaxation time (ms).
        t2: transverse relaxation time (ms), standing in for T2* at the short echo time.
        tr: time between inversions (ms).
        ti: inversion to the k-space centre (ms).
        flip_deg: readout flip angle (degrees).
        esp: echo spacing (ms).
        readouts: readouts per inversion.
        te: echo time (ms).

    Returns:
        The signal, same shape as the broadcast inputs.

    Raises:
        ValueError: the readout train does not fit between ``ti`` and ``tr``.

    Examples:
        ADNI's 3 T protocol (TR 2300, TI 900, 9 degrees, 176 readouts): white matter brighter than
        grey matter, CSF darkest, and gadolinium's T1 shortening makes a tissue brighter:

        >>> import numpy as np
        >>> t1 = np.array([830.0, 1330.0, 4160.0, 560.0])  # WM, GM, CSF, enhancing tumour
        >>> s = mprage(1.0, t1, 100.0, tr=2300.0, ti=900.0, flip_deg=9.0, esp=7.0, readouts=176, te=3.0)
        >>> bool(s[3] > s[0] > s[1] > s[2])
        True
    """
    start = ti - (readouts // 2) * esp
    delay = tr - start - readouts * esp
    if start < 0 or delay < 0:
        raise ValueError(f"{readouts} readouts every {esp} ms do not fit around TI {ti} ms within TR {tr} ms")
    t1 = np.asarray(t1, dtype=np.float64)
    a = np.deg2rad(flip_deg)

    def relax(t: float) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-t / t1)
        return e, 1.0 - e

    def then(first: tuple, second: tuple) -> tuple:  # apply ``first``, then ``second``
        return second[0] * first[0], second[0] * first[1] + second[1]

    e_esp, _ = relax(esp)
    step = (np.cos(a) * e_esp, 1.0 - e_esp)  # a flip, then one echo spacing of recovery

    def train(n: int) -> tuple:
        an = step[0] ** n
        return an, step[1] * (1.0 - an) / (1.0 - step[0])

    to_centre = then((-1.0, 0.0), relax(start))
    to_centre = then(to_centre, train(readouts // 2))
    cycle = then(then(to_centre, train(readouts - readouts // 2)), relax(delay))
    steady = cycle[1] / (1.0 - cycle[0])  # just before the inversion
    centre = to_centre[0] * steady + to_centre[1]
    return np.asarray(pd * np.abs(centre) * np.sin(a) * np.exp(-te / np.asarray(t2)))


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


#: The slice planes of a 2-D acquisition and the array axis across which each one's slices lie (RAS
#: grids: sagittal slices across x, coronal across y, axial across z).
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}


@dataclass(frozen=True)
class Acquisition:
    """One simulated acquisition: a signal equation of this module, its parameters and its geometry.

    Attributes:
        equation: a function ``(pd, t1, t2, **params) -> signal`` of this module.
        params: the sequence's parameters (times in ms, angles in degrees).
        contrast: whether it is acquired after gadolinium.
        thickness_mm: a 2-D acquisition's range of slice thickness (each case draws one), or None
            for a 3-D acquisition, as sharp across as in plane.
        planes: the planes a 2-D acquisition's slices may lie in (each case draws one, see
            :data:`PLANE_AXIS`).

    Examples:
        >>> se = Acquisition(spin_echo, {"tr": 500.0, "te": 10.0})
        >>> round(float(se.signal(0.7, 832.0, 80.0)), 3), se.describe()["equation"]
        (0.279, 'spin_echo')
    """

    equation: Callable[..., np.ndarray]
    params: dict = field(default_factory=dict)
    contrast: bool = False
    thickness_mm: tuple[float, float] | None = None
    planes: tuple[str, ...] = ("axial",)

    def __post_init__(self) -> None:
        unknown = [p for p in self.planes if p not in PLANE_AXIS]
        if unknown or not self.planes:
            raise ValueError(f"planes must be some of {', '.join(PLANE_AXIS)}, got {self.planes}")
        if self.thickness_mm is not None and not 0 < self.thickness_mm[0] <= self.thickness_mm[1]:
            raise ValueError(f"thickness_mm must be (low, high) with 0 < low <= high, got {self.thickness_mm}")

    def point_spread(self, in_plane_mm: float, rng: np.random.Generator) -> tuple[tuple[float, float, float], dict]:
        """One case's point spread: ``in_plane_mm`` along every axis, and across a 2-D acquisition's
        slices the larger of that and a slice thickness drawn from :attr:`thickness_mm` (the slice
        profile taken as a Gaussian of that full width).

        Args:
            in_plane_mm: the in-plane full width at half maximum.
            rng: the case's random stream (nothing is drawn for a 3-D acquisition).

        Returns:
            The full width per axis (mm), and what was drawn (``{"plane", "thickness_mm"}``, empty for 3-D).
        """
        fwhm = [in_plane_mm] * 3
        if self.thickness_mm is None:
            return tuple(fwhm), {}
        plane = self.planes[int(rng.integers(len(self.planes)))]
        thickness = float(rng.uniform(*self.thickness_mm))
        fwhm[PLANE_AXIS[plane]] = max(in_plane_mm, thickness)
        return tuple(fwhm), {"plane": plane, "thickness_mm": round(thickness, 2)}

    def signal(self, pd: ArrayLike, t1: ArrayLike, t2: ArrayLike) -> np.ndarray:
        """The equation's signal for these tissue properties."""
        return self.equation(pd, t1, t2, **self.params)

    def describe(self) -> dict:
        """A JSON-ready description (equation name, parameters, contrast, geometry)."""
        geometry = {"thickness_mm": list(self.thickness_mm), "planes": list(self.planes)} if self.thickness_mm else {}
        return {"equation": self.equation.__name__, **self.params, "contrast": self.contrast, **geometry}
