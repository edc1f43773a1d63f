"""MyoPS-like cardiac phantoms: short-axis stacks seen by bSSFP, LGE and T2 sequences.

No package bundles cardiac MRI, so the anatomy is drawn from simple shapes and the contrast is
computed, as for the brain, from tissue properties through the sequences' signal equations:

* **Anatomy** (per slice, base to apex): a torso with lungs, chest-wall fat, spine and descending
  aorta; the left ventricle (LV) as an irregular ellipse of blood ringed by myocardium whose
  thickness varies around the circumference; the right ventricle (RV) as a crescent of blood with
  a thin free wall wrapped around the septum; epicardial fat. The ventricles shrink towards the
  apex. Size, wall thickness, position and orientation vary per case.
* **Pathology**: an infarct in one coronary territory: scar from the endocardium outwards
  (transmurality 30-100 %) over an angular sector, inside a wider sector of oedema, over a range of
  slices.
* **Contrast** (:mod:`~pkd_lessons.phantoms.signal`): bSSFP (flip 60 degrees) follows T2/T1, so
  blood is bright and myocardium dark; LGE is an inversion recovery after gadolinium with the
  inversion time that nulls healthy myocardium, so scar (more gadolinium, shorter T1) is bright;
  T2 is a black-blood spin echo (TE 60 ms) in which oedema's longer T2 is bright and flowing blood
  is suppressed.
* **Scanner**: partial volume (3x supersampling in-plane), point-spread blur, a strong surface-coil
  bias field, Rician noise.
* **Labels**: MyoPS 2020 values (500 LV, 600 RV, 200 myocardium, 1220 oedema, 2221 scar); the
  training label is a rater's drawing (:mod:`~pkd_lessons.phantoms.raters`), the clean truth is kept.

The three sequences are co-registered, as in MyoPS 2020 (unlike MS-CMRSeg 2019, whose sequences are
not), so pixel-level distillation between them is meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pkd_lessons.data.labels import MYOPS
from pkd_lessons.data.layouts import HEART_MODALITIES, MYOPS_SUFFIX
from pkd_lessons.data.nifti import write_nifti
from pkd_lessons.phantoms.case import PhantomCase, scanner_units, vary_tissues
from pkd_lessons.phantoms.fields import bias_field, partial_volume_blur, rician_noise
from pkd_lessons.phantoms.raters import RaterModel
from pkd_lessons.phantoms.signal import bssfp, inversion_recovery, null_time, spin_echo

#: The sequences the phantom simulates (:func:`_signals`), in the order it draws them: its own list.
#: The files it writes are the layout's (``data.layouts.HEART_MODALITIES``, with
#: MyoPS's suffixes); a sequence simulated beyond them is not written.
MODALITIES: tuple[str, ...] = ("bssfp", "lge", "t2")

# Tissue index in the drawing (not the label): 0 air, then these.
TISSUE_NAMES = ("air", "blood", "myocardium", "oedema", "scar", "fat", "muscle", "lung", "liver", "bone")
#: pd (relative), t1 and t2 (ms) at 1.5 T, t1 after gadolinium (ms) for LGE.
TISSUES: dict[str, dict[str, float]] = {
    "air": {"pd": 0.0, "t1": 1000.0, "t2": 10.0, "t1_gd": 1000.0},
    "blood": {"pd": 0.95, "t1": 1550.0, "t2": 250.0, "t1_gd": 300.0},
    "myocardium": {"pd": 0.80, "t1": 950.0, "t2": 45.0, "t1_gd": 450.0},
    "oedema": {"pd": 0.85, "t1": 1100.0, "t2": 65.0, "t1_gd": 400.0},
    "scar": {"pd": 0.82, "t1": 1000.0, "t2": 60.0, "t1_gd": 230.0},
    "fat": {"pd": 0.90, "t1": 280.0, "t2": 80.0, "t1_gd": 260.0},
    "muscle": {"pd": 0.75, "t1": 900.0, "t2": 35.0, "t1_gd": 500.0},
    "lung": {"pd": 0.10, "t1": 1200.0, "t2": 30.0, "t1_gd": 900.0},
    "liver": {"pd": 0.70, "t1": 600.0, "t2": 40.0, "t1_gd": 400.0},
    "bone": {"pd": 0.30, "t1": 500.0, "t2": 40.0, "t1_gd": 450.0},
}
BLACK_BLOOD = 0.08  # residual blood signal of the black-blood T2 sequence

# Label class of each tissue (MyoPS class indices: 1 LV, 2 myo, 3 RV, 4 oedema, 5 scar); blood is
# resolved to LV or RV by position.
_LV, _MYO, _RV, _OED, _SCAR = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class CardiacPhantomConfig:
    """Settings of the cardiac phantom.

    Attributes:
        size: in-plane matrix (square); 96 pixels of 1.5 mm frame the heart as MyoPS images are
            usually cropped for training.
        pixel_mm: in-plane pixel size.
        slice_mm: slice spacing.
        slices: inclusive range of the number of slices per case (MyoPS has 3-6).
        supersample: in-plane supersampling factor for partial volume.
        pathology_rate: fraction of cases with an infarct.
        tissue_sd: relative per-case variation of every tissue property.
        blur_fwhm_mm: in-plane point spread.
        bias: log-gain standard deviation of the coil bias field.
        noise: Rician sigma relative to each image's bright tissue.
        raters: the annotation-noise model.
    """

    size: int = 96
    pixel_mm: float = 1.5
    slice_mm: float = 10.0
    slices: tuple[int, int] = (3, 6)
    supersample: int = 3
    pathology_rate: float = 0.9
    tissue_sd: float = 0.05
    blur_fwhm_mm: float = 2.0
    bias: float = 0.2
    noise: float = 0.03
    # Inter-rater Dice about 0.92 LV, 0.84 Myo, 0.93 RV, 0.78 oedema, 0.63 scar.
    raters: RaterModel = field(
        default_factory=lambda: RaterModel(habit_sd_mm=0.6, case_sd_mm=0.3, jitter_sd_mm=0.6, jitter_scale_mm=10.0)
    )

    def __post_init__(self) -> None:
        if self.size < 64:
            raise ValueError(f"size must be at least 64 pixels, got {self.size}")
        if not 1 <= self.slices[0] <= self.slices[1]:
            raise ValueError(f"slices must be an increasing range of positive counts, got {self.slices}")


CardiacCase = PhantomCase  # one generated cardiac case


def _harmonics(rng: np.random.Generator, amplitude: float, order: int = 4):
    """A smooth random function of angle: a few Fourier harmonics with decaying amplitude."""
    coef = rng.normal(0, 1, (order, 2)) / np.arange(1, order + 1)[:, None]
    coef *= amplitude / np.sqrt((coef**2).sum() / 2 + 1e-9)
    return lambda phi: sum(a * np.cos((k + 1) * phi) + b * np.sin((k + 1) * phi) for k, (a, b) in enumerate(coef))


def _ellipse(x, y, cx, cy, rx, ry, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 < 1.0


def _draw_slice(x, y, p: dict, z_frac: float):
    """Tissue index map and class map of one slice on the supersampled grid."""
    tissue = np.zeros(x.shape, np.uint8)
    cls = np.zeros(x.shape, np.uint8)
    t = {n: i for i, n in enumerate(TISSUE_NAMES)}
    # Torso, subcutaneous fat, lungs, spine, aorta, liver (towards the apex).
    body = _ellipse(x, y, 0, 15, 150 * p["torso"], 105 * p["torso"])
    inner = _ellipse(x, y, 0, 15, 150 * p["torso"] - 12, 105 * p["torso"] - 10)
    tissue[body] = t["fat"]
    tissue[inner] = t["muscle"]
    for side in (-1, 1):
        tissue[_ellipse(x, y, side * 70, 5, 38, 62, side * 0.2) & inner] = t["lung"]
    tissue[_ellipse(x, y, 0, 85, 16, 14)] = t["bone"]
    tissue[_ellipse(x, y, 22, 62, 10, 10)] = t["blood"]
    if z_frac > 0.5:
        tissue[_ellipse(x, y, -55, 60, 50 * z_frac, 40 * z_frac) & inner] = t["liver"]
    # Heart, centred at (cx, cy), rotated by p["rot"].
    cx, cy = p["centre"]
    dx, dy = x - cx, y - cy
    c, s = np.cos(p["rot"]), np.sin(p["rot"])
    u, v = dx * c + dy * s, -dx * s + dy * c
    rho = np.sqrt((u / p["ecc"]) ** 2 + (v * p["ecc"]) ** 2)
    phi = np.arctan2(v, u)
    shrink = np.sqrt(max(1.0 - (0.9 * z_frac) ** 2, 0.05))
    r_endo = p["r_endo"] * shrink * (1 + p["endo_wobble"](phi))
    r_epi = r_endo + p["thick"] * (0.75 + 0.25 * shrink) * (1 + p["thick_wobble"](phi))
    # Patchy epicardial fat, then the RV crescent against the septum, then the LV.
    fat = (rho >= r_epi) & (rho < r_epi + np.maximum(0.0, 2.0 + 40.0 * p["fat_patches"](phi)))
    tissue[fat & (tissue != t["bone"])] = t["fat"]
    rv_shrink = np.sqrt(max(1.0 - (1.05 * z_frac) ** 2, 0.0))
    if rv_shrink > 0.15:
        rv_a, rv_b = p["rv_a"] * rv_shrink, p["rv_b"] * rv_shrink
        dist = float(np.mean(r_epi)) + 0.4 * rv_a
        rv_c = (dist * np.cos(p["rv_angle"]), dist * np.sin(p["rv_angle"]))
        rv_out = _ellipse(u, v, *rv_c, rv_a + 3, rv_b + 3, p["rv_angle"])
        rv_in = _ellipse(u, v, *rv_c, rv_a, rv_b, p["rv_angle"])
        outside_lv = rho > r_epi
        tissue[rv_out & outside_lv] = t["myocardium"]  # RV free wall: myocardium, not labelled
        tissue[rv_in & outside_lv] = t["blood"]
        cls[rv_in & outside_lv] = _RV
    myo = (rho >= r_endo) & (rho < r_epi)
    tissue[rho < r_endo] = t["blood"]
    cls[rho < r_endo] = _LV
    tissue[myo] = t["myocardium"]
    cls[myo] = _MYO
    inf = p["infarct"]
    if inf is not None and inf["z"][0] <= z_frac <= inf["z"][1]:
        ang = np.angle(np.exp(1j * (phi - inf["angle"])))  # wrapped to (-pi, pi]
        depth = (rho - r_endo) / np.maximum(r_epi - r_endo, 1e-3)
        oedema = myo & (np.abs(ang) < inf["oedema_width"] / 2 * (1 + inf["wobble"](phi)))
        scar = oedema & (np.abs(ang) < inf["scar_width"] / 2) & (depth < inf["transmural"])
        tissue[oedema] = t["oedema"]
        cls[oedema] = _OED
        tissue[scar] = t["scar"]
        cls[scar] = _SCAR
    return tissue, cls


def _case_parameters(rng: np.random.Generator, cfg: CardiacPhantomConfig) -> dict:
    r_endo = rng.uniform(18, 26)
    thick = rng.uniform(7, 12)
    p = {
        "torso": rng.uniform(0.9, 1.1),
        "centre": tuple(rng.normal(0, 8, 2)),
        "rot": rng.uniform(-np.pi, np.pi) * 0.15,
        "ecc": rng.uniform(0.92, 1.08),
        "r_endo": r_endo,
        "thick": thick,
        "endo_wobble": _harmonics(rng, 0.06),
        "thick_wobble": _harmonics(rng, 0.15),
        "rv_angle": np.pi + rng.normal(0, 0.15),
        "fat_patches": _harmonics(rng, 0.1),
        "rv_a": rng.uniform(14, 22),
        "rv_b": rng.uniform(30, 42),
        "infarct": None,
    }
    if rng.random() < cfg.pathology_rate:
        scar_width = np.deg2rad(rng.uniform(30, 90))
        start = rng.uniform(0.0, 0.6)
        p["infarct"] = {
            "angle": rng.uniform(-np.pi, np.pi),
            "scar_width": scar_width,
            "oedema_width": scar_width + np.deg2rad(rng.uniform(20, 60)),
            "transmural": rng.uniform(0.3, 1.0),
            "z": (start, min(1.0, start + rng.uniform(0.4, 1.0))),
            "wobble": _harmonics(rng, 0.1),
        }
    return p


def _signals(props: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """Signal of every tissue in every sequence, as lookup tables indexed by tissue index."""
    pd = np.array([props[n]["pd"] for n in TISSUE_NAMES])
    t1 = np.array([props[n]["t1"] for n in TISSUE_NAMES])
    t2 = np.array([props[n]["t2"] for n in TISSUE_NAMES])
    t1_gd = np.array([props[n]["t1_gd"] for n in TISSUE_NAMES])
    ti = null_time(props["myocardium"]["t1_gd"], tr=5000.0)
    t2w = spin_echo(pd, t1, t2, tr=1600.0, te=60.0)
    t2w[TISSUE_NAMES.index("blood")] *= BLACK_BLOOD
    return {
        "bssfp": bssfp(pd, t1, t2, flip_deg=60.0, te=1.5),
        "lge": inversion_recovery(pd, t1_gd, t2, ti=ti, tr=5000.0, te=2.0),
        "t2": t2w,
    }


def make_cardiac_case(
    seed: int, index: int, cfg: CardiacPhantomConfig | None = None, habits: np.ndarray | None = None
) -> CardiacCase:
    """Generate one cardiac case.

    Args:
        seed: the set's seed.
        index: case number; case ``index`` of a seed is the same whatever the set's size.
        cfg: phantom settings.
        habits: rater panel habits (``(n_raters, 5)`` mm, one per region); drawn from ``seed`` when omitted.

    Returns:
        The :class:`CardiacCase`.
    """
    cfg = cfg or CardiacPhantomConfig()
    if habits is None:
        habits = rater_panel(seed, cfg)
    rng = np.random.default_rng([seed, index])
    n_slices = int(rng.integers(cfg.slices[0], cfg.slices[1] + 1))
    p = _case_parameters(rng, cfg)
    props = vary_tissues(TISSUES, rng, cfg.tissue_sd)
    tables = _signals(props)
    k = cfg.supersample
    fine = (np.arange(cfg.size * k) - (cfg.size * k - 1) / 2) * cfg.pixel_mm / k
    y, x = np.meshgrid(fine, fine, indexing="ij")  # array axis 0 = anterior-posterior (y)
    x, y = x.T, y.T  # axis 0 = x (left-right), axis 1 = y, as NIfTI's first two axes
    shape = (cfg.size, cfg.size, n_slices)
    images = {m: np.zeros(shape, np.float32) for m in MODALITIES}
    truth = np.zeros(shape, np.uint8)
    for z in range(n_slices):
        tissue, cls = _draw_slice(x, y, p, (z + 0.5) / (n_slices + 0.5))
        for m in MODALITIES:
            images[m][:, :, z] = tables[m][tissue].reshape(cfg.size, k, cfg.size, k).mean((1, 3))
        truth[:, :, z] = cls[k // 2 :: k, k // 2 :: k]
    spacing = (cfg.pixel_mm, cfg.pixel_mm, cfg.slice_mm)
    out: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        img = partial_volume_blur(images[m], (cfg.pixel_mm, cfg.pixel_mm, 1e6), cfg.blur_fwhm_mm)
        img = img * bias_field(shape, rng, (cfg.pixel_mm, cfg.pixel_mm, cfg.pixel_mm), cfg.bias, 150.0)
        reference = float(np.percentile(img, 99))
        img = rician_noise(img, cfg.noise * reference, rng)
        out[m] = scanner_units(img, reference, rng)
    rater = int(rng.integers(len(habits)))
    label = cfg.raters.draw(truth, habits[rater], MYOPS, spacing, rng)
    affine = np.diag([cfg.pixel_mm, cfg.pixel_mm, cfg.slice_mm, 1.0])
    affine[:3, 3] = -np.asarray(shape) / 2 * np.asarray(spacing)
    area = cfg.pixel_mm**2 / 100.0
    info = {
        "rater": rater,
        "slices": n_slices,
        "infarct": p["infarct"] is not None,
        "area_cm2": {
            name: round(float(r.sum()) * area, 2) for name, r in zip(MYOPS.region_names, MYOPS.to_regions(truth))
        },
    }
    return CardiacCase(out, MYOPS.from_classes(label), MYOPS.from_classes(truth), affine, info)


def rater_panel(seed: int, cfg: CardiacPhantomConfig | None = None) -> np.ndarray:
    """The habits of a set's rater panel, drawn from the set's seed."""
    cfg = cfg or CardiacPhantomConfig()
    return cfg.raters.panel(MYOPS, np.random.default_rng([seed, 2**31 - 1]))


def case_name(index: int) -> str:
    """MyoPS 2020 training case identifier of case ``index``."""
    return f"myops_training_{101 + index}"


def write_cardiac_case(case: CardiacCase, folder: Path, name: str) -> None:
    """Write one case in the MyoPS 2020 layout under ``folder`` (images in ``train25/``,
    labels in ``train25_myops_gd/``, clean truth beside the label as ``_gd_clean``): the layout's
    modalities (``data.layouts.HEART_MODALITIES``), whatever else was simulated.

    Raises:
        ValueError: a modality the layout stores was not simulated.
    """
    for m, volume in case.stored(HEART_MODALITIES, "MyoPS", name).items():
        write_nifti(volume, case.affine, folder / "train25" / f"{name}_{MYOPS_SUFFIX[m]}.nii.gz")
    write_nifti(case.label.astype(np.int16), case.affine, folder / "train25_myops_gd" / f"{name}_gd.nii.gz")
    write_nifti(case.truth.astype(np.int16), case.affine, folder / "train25_myops_gd" / f"{name}_gd_clean.nii.gz")
