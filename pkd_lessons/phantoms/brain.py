"""BraTS-like brain tumour phantoms on the real MNI ICBM152 anatomy.

One case is made in six steps, each a function of the case's own random stream:

1. **Anatomy.** The template's grey-matter, white-matter and CSF fractions are resampled to the
   phantom grid through a small random affine (scale, rotation) and a smooth random deformation,
   so that no two cases have the same brain.
2. **Lesion.** :func:`~pkd_lessons.phantoms.tumour.grow_tumour` grows necrosis, enhancing rim and
   oedema at a random white-matter site.
3. **Contrast.** Each voxel's signal is the fraction-weighted sum of its tissues' signals, computed
   from proton density, T1 and T2 with the sequences' equations
   (:mod:`~pkd_lessons.phantoms.signal`), at 3 T with the tissue values of the MR literature
   (:data:`TISSUES`, each with its source). T1 is a 2-D spin echo (TR 500, TE 10 ms), T1ce the
   3-D MPRAGE that BraTS's post-contrast scans mostly are (ADNI's 3 T protocol) after gadolinium,
   which reaches every tissue in proportion to what the literature measures: a little in the
   blood of healthy brain, a little more in oedema, much more in the enhancing rim where the
   blood-brain barrier is broken. T2 is a long-TR spin echo (TR 4000, TE 100 ms) and FLAIR an
   inversion recovery that nulls CSF (TR 9000, TE 120 ms). Tissue properties vary a few percent
   per case. The volume the lesion adds (its core, and the water of its oedema) pushes the healthy
   anatomy aside (:mod:`~pkd_lessons.phantoms.mass_effect`).
4. **Scanner.** Point-spread blur, a smooth multiplicative bias field and Rician noise, then
   skull-stripping (background exactly 0, as in BraTS) and a per-case scanner gain. T1ce is a 3-D
   acquisition, as sharp across as in plane; T1, T2 and FLAIR are 2-D acquisitions whose slices, in
   a plane and of a thickness each case draws from what BraTS's sites used, blur them across the
   slices (:data:`SEQUENCES`).
5. **Labels.** The clean truth is the lesion's class map; the training label is drawn from it by a
   rater of the set's panel (:mod:`~pkd_lessons.phantoms.raters`).
6. **Files.** BraTS 2021 layout and labels (1 necrotic core, 2 oedema, 4 enhancing).

The contrasts come out in the order the literature reports: enhancing rim bright on T1ce, oedema
bright on FLAIR and T2 and dark on T1 and T1ce (its T1 prolongation outweighs its extra water),
CSF dark on FLAIR and bright on T2, necrosis dark on T1ce.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from pkd_lessons.data.labels import BRATS
from pkd_lessons.data.layouts import BRAIN_MODALITIES
from pkd_lessons.data.nifti import write_nifti
from pkd_lessons.phantoms.case import PhantomCase, scanner_units, vary_tissues
from pkd_lessons.phantoms.fields import bias_field, partial_volume_blur, random_displacement, rician_noise, smooth_field
from pkd_lessons.phantoms.mass_effect import TOLERANCE as MASS_EFFECT_TOLERANCE
from pkd_lessons.phantoms.mass_effect import push, push_coordinates, swelling
from pkd_lessons.phantoms.mni import MNI_NOTICE, load_tissue_template
from pkd_lessons.phantoms.raters import RaterModel
from pkd_lessons.phantoms.signal import Acquisition, inversion_recovery, mprage, spin_echo, t1_with_contrast
from pkd_lessons.phantoms.tumour import grow_tumour

#: Tissue properties at 3 T: proton density (water fraction), T1 and T2 (ms), gadolinium
#: concentration after the standard dose (mmol/l, at :data:`RELAXIVITY`).
#:
#: * White and grey matter: T1 832 / 1331 ms, T2 80 / 110 ms (Wansapura et al., *JMRI* 9:531,
#:   1999); water 70 / 80 % (Neeb et al., *NeuroImage* 31:1156, 2006).
#: * CSF: T1 4163 ms (Lu et al., *JMRI* 22:13, 2005), T2 about 2000 ms.
#: * Peritumoral oedema: water 85 % (white matter swollen by vasogenic oedema), T1 1600 ms (about
#:   twice white matter's) and T2 180 ms, as quantitative maps of untreated glioblastomas show
#:   (Nöth et al., *NMR Biomed* 33, 2020; Blystad et al., *Sci Rep* 10, 2020).
#: * Gadolinium: the R1 rise after contrast, ``r1 C``, measured by Blystad et al. (normal-appearing
#:   white matter 0.032 /s, peritumoral oedema 0.047 /s) and by Nöth et al. (T1 falls by 838 ms in
#:   the enhancing rim, 123 ms in oedema, 32 ms in normal tissue); grey matter's about twice
#:   white matter's, as its blood volume.
#: * Necrosis: fluid-like (long T1 and T2, no enhancement); enhancing rim: cellular tumour, T1
#:   1400 ms before contrast.
TISSUES: dict[str, dict[str, float]] = {
    "wm": {"pd": 0.70, "t1": 832.0, "t2": 80.0, "gd": 0.008},
    "gm": {"pd": 0.80, "t1": 1331.0, "t2": 110.0, "gd": 0.015},
    "csf": {"pd": 1.00, "t1": 4163.0, "t2": 2000.0, "gd": 0.0},
    "necrosis": {"pd": 0.95, "t1": 2500.0, "t2": 400.0, "gd": 0.0},
    "oedema": {"pd": 0.85, "t1": 1600.0, "t2": 180.0, "gd": 0.013},
    "enhancing": {"pd": 0.85, "t1": 1400.0, "t2": 120.0, "gd": 0.27},
}

#: Gadolinium chelates' longitudinal relaxivity at 3 T, 1/(mmol/l s) (Rohrer et al., *Invest
#: Radiol* 40:715, 2005: 3.7-5.0 in plasma, by agent).
RELAXIVITY = 4.0

#: Acquisitions (times in ms) and their geometry, as BraTS's scans were acquired (Menze et al., *IEEE
#: TMI* 34:1993, 2015, section III): T1ce a 3-D acquisition at 1 mm isotropic, here ADNI's 3 T
#: MPRAGE (Jack et al., *JMRI* 27:685, 2008); T1 2-D sagittal or axial slices 1-6 mm thick, T2 2-D
#: axial slices 2-6 mm thick, FLAIR 2-D axial, coronal or sagittal slices 2-6 mm thick. Each case
#: draws its plane and thickness, as each site chose its own.
SEQUENCES: dict[str, Acquisition] = {
    # TI nulls CSF: 4163 * ln(2 / (1 + exp(-9000/4163))) ~ 2430 ms.
    "flair": Acquisition(
        inversion_recovery,
        {"tr": 9000.0, "te": 120.0, "ti": 2430.0},
        thickness_mm=(2.0, 6.0),
        planes=("axial", "coronal", "sagittal"),
    ),
    "t1": Acquisition(spin_echo, {"tr": 500.0, "te": 10.0}, thickness_mm=(1.0, 6.0), planes=("sagittal", "axial")),
    "t1ce": Acquisition(
        mprage, {"tr": 2300.0, "ti": 900.0, "flip_deg": 9.0, "esp": 7.0, "readouts": 176, "te": 3.0}, contrast=True
    ),
    "t2": Acquisition(spin_echo, {"tr": 4000.0, "te": 100.0}, thickness_mm=(2.0, 6.0), planes=("axial",)),
}

#: What identifies the brain phantom's physics: a set made with other values is regenerated.
PHYSICS: dict = {
    "tissues": TISSUES,
    "relaxivity": RELAXIVITY,
    "sequences": {m: a.describe() for m, a in SEQUENCES.items()},
    "mass_effect": {"model": "radial volume-conserving push", "tolerance_voxels": MASS_EFFECT_TOLERANCE},
}
#: The sequences the phantom simulates, in the order it draws them: its own list. The files it
#: writes are the layout's (``data.layouts.BRAIN_MODALITIES``, what BraTS stores);
#: a sequence simulated beyond them (a DWI, say) stays in :class:`BrainCase` and is not written, so
#: it cannot change what reading a real folder expects.
MODALITIES: tuple[str, ...] = tuple(SEQUENCES)


@dataclass(frozen=True)
class BrainPhantomConfig:
    """Settings of the brain phantom.

    Attributes:
        voxel_mm: isotropic voxel size (2 mm default; 1 mm is the template's own grid).
        deform_mm: standard deviation of the smooth anatomical deformation.
        deform_scale_mm: correlation length of the deformation.
        scale_sd: standard deviation of the random global scaling per axis.
        rotation_deg: standard deviation of the random rotation about each axis.
        tissue_sd: relative per-case variation of every tissue property.
        heterogeneity: relative within-lesion variation of contrast uptake and T2.
        blur_fwhm_mm: scanner point spread.
        bias: log-gain standard deviation of the bias field.
        noise: Rician noise sigma relative to white-matter signal.
        mass_effect_fade_mm: length over which the lesion's push on the anatomy fades.
        thick_slices: acquire T1, T2 and FLAIR as 2-D slices of the planes and thicknesses BraTS's
            sites used (:data:`SEQUENCES`); False: every modality as sharp across as in plane, as
            T1ce is.
        raters: the annotation-noise model.
    """

    voxel_mm: float = 2.0
    deform_mm: float = 2.5
    deform_scale_mm: float = 40.0
    scale_sd: float = 0.04
    rotation_deg: float = 3.0
    tissue_sd: float = 0.05
    heterogeneity: float = 0.25
    blur_fwhm_mm: float = 2.0
    bias: float = 0.1
    noise: float = 0.04
    mass_effect_fade_mm: float = 20.0
    thick_slices: bool = True
    # Edges are diffuse for oedema on FLAIR, crisper for the core and crisp for the enhancing rim:
    # inter-rater Dice about 0.82 / 0.85 / 0.82 for WT / TC / ET (BraTS reports 0.74-0.85).
    raters: RaterModel = field(
        default_factory=lambda: RaterModel(
            habit_sd_mm=1.2,
            case_sd_mm=0.5,
            jitter_sd_mm=1.0,
            jitter_scale_mm=8.0,
            region_scale=(("TC", 0.7), ("ET", 0.4)),
        )
    )

    def __post_init__(self) -> None:
        if not 0.5 <= self.voxel_mm <= 4.0:
            raise ValueError(f"voxel_mm must be between 0.5 and 4 mm, got {self.voxel_mm}")


BrainCase = PhantomCase  # one generated brain case


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    for axis, a in enumerate(angles_rad):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = out @ r
    return out


def _anatomy(cfg: BrainPhantomConfig, rng: np.random.Generator):
    """Resample the template's tissue fractions through a random affine and deformation."""
    tpl = load_tissue_template()
    s = cfg.voxel_mm
    shape = tuple(int((n - 1) // s) + 1 for n in tpl.shape)
    spacing = (s, s, s)
    centre = (np.asarray(tpl.shape, dtype=np.float64) - 1) / 2
    matrix = _rotation(np.deg2rad(rng.normal(0, cfg.rotation_deg, 3))) @ np.diag(rng.normal(1.0, cfg.scale_sd, 3))
    disp = random_displacement(shape, rng, spacing, cfg.deform_mm, cfg.deform_scale_mm) * s
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) * s for n in shape], indexing="ij"))
    coords = np.tensordot(matrix, grid - centre[:, None, None, None], axes=1)
    coords += centre[:, None, None, None] + disp
    sample = lambda vol: ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
    wm, gm, csf = (sample(v).astype(np.float32) for v in (tpl.wm, tpl.gm, tpl.csf))
    affine = tpl.affine @ np.diag([s, s, s, 1.0])
    return wm, gm, csf, affine, spacing


def _tissue_signal(
    props: dict[str, float], modality: str, gd_scale: np.ndarray | float = 1.0, t2_scale: np.ndarray | float = 1.0
) -> np.ndarray:
    acquisition = SEQUENCES[modality]
    t1 = props["t1"]
    if acquisition.contrast:
        t1 = t1_with_contrast(t1, props["gd"] * gd_scale, r1=RELAXIVITY)
    return acquisition.signal(props["pd"], t1, props["t2"] * t2_scale)


def _mass_effect(cfg, tumour, spacing, props, tissues):
    """Push the healthy tissue fractions aside by the volume the lesion adds."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    added = swelling(props["wm"]["pd"], props["oedema"]["pd"]) * float(tumour.oedema.sum())
    added_ml = (added + float((tumour.necrosis + tumour.enhancing).sum())) * voxel_ml
    coords = push_coordinates(tissues[0].shape, spacing, tumour.centre_vox, added_ml, cfg.mass_effect_fade_mm)
    return push(tissues, coords), added_ml


def make_brain_case(
    seed: int, index: int, cfg: BrainPhantomConfig | None = None, habits: np.ndarray | None = None
) -> BrainCase:
    """Generate one brain case.

    Args:
        seed: the set's seed.
        index: case number; case ``index`` of a seed is the same whatever the set's size.
        cfg: phantom settings.
        habits: rater panel habits (``(n_raters, 3)`` mm, one per region); drawn from ``seed`` when omitted.

    Returns:
        The :class:`BrainCase`.
    """
    cfg = cfg or BrainPhantomConfig()
    if habits is None:
        habits = rater_panel(seed, cfg)
    rng = np.random.default_rng([seed, index])
    wm, gm, csf, affine, spacing = _anatomy(cfg, rng)
    tumour = grow_tumour(wm, gm, csf, spacing, rng)
    healthy = 1.0 - tumour.total
    props = vary_tissues(TISSUES, rng, cfg.tissue_sd, fixed=("gd",))
    (wm, gm, csf), added_ml = _mass_effect(cfg, tumour, spacing, props, (wm, gm, csf))
    uptake = np.exp(cfg.heterogeneity * smooth_field(wm.shape, rng, spacing, 10.0))
    t2_var = np.exp(0.5 * cfg.heterogeneity * smooth_field(wm.shape, rng, spacing, 10.0))
    brain = np.clip(wm + gm + csf, 0.0, 1.0)
    mask = ndimage.binary_fill_holes(brain > 0.5)
    images: dict[str, np.ndarray] = {}
    slices: dict[str, dict] = {}
    for modality in SEQUENCES:  # MODALITIES, or what a caller simulates beyond them
        signal = healthy * (
            wm * _tissue_signal(props["wm"], modality)
            + gm * _tissue_signal(props["gm"], modality)
            + csf * _tissue_signal(props["csf"], modality)
        )
        signal = signal + tumour.necrosis * _tissue_signal(props["necrosis"], modality)
        signal = signal + tumour.oedema * _tissue_signal(props["oedema"], modality, gd_scale=uptake, t2_scale=t2_var)
        signal = signal + tumour.enhancing * _tissue_signal(
            props["enhancing"], modality, gd_scale=uptake, t2_scale=t2_var
        )
        acquisition = SEQUENCES[modality] if cfg.thick_slices else replace(SEQUENCES[modality], thickness_mm=None)
        fwhm, slices[modality] = acquisition.point_spread(cfg.blur_fwhm_mm, rng)
        signal = partial_volume_blur(signal, spacing, fwhm)
        signal = signal * bias_field(signal.shape, rng, spacing, cfg.bias)
        reference = float(_tissue_signal(props["wm"], modality))
        signal = rician_noise(signal, cfg.noise * reference, rng)
        images[modality] = np.where(mask, scanner_units(signal, reference, rng), 0).astype(np.int16)
    truth_classes = np.where(mask, tumour.labels, 0).astype(np.uint8)
    rater = int(rng.integers(len(habits)))
    label_classes = cfg.raters.draw(truth_classes, habits[rater], BRATS, spacing, rng, mask=mask)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    regions = BRATS.to_regions(truth_classes)
    info = {
        "rater": rater,
        "centre_vox": list(tumour.centre_vox),
        "core_radius_mm": round(tumour.radius_mm, 2),
        "added_ml": round(added_ml, 2),
        "slices": {m: d for m, d in slices.items() if d},
        "volume_ml": {name: round(float(r.sum()) * voxel_ml, 2) for name, r in zip(BRATS.region_names, regions)},
    }
    tissues = {"wm": wm * healthy, "gm": gm * healthy, "csf": csf * healthy}
    return BrainCase(
        images, BRATS.from_classes(label_classes), BRATS.from_classes(truth_classes), affine, info, tissues
    )


def rater_panel(seed: int, cfg: BrainPhantomConfig | None = None) -> np.ndarray:
    """The habits of a set's rater panel, drawn from the set's seed."""
    cfg = cfg or BrainPhantomConfig()
    return cfg.raters.panel(BRATS, np.random.default_rng([seed, 2**31 - 1]))


def case_name(index: int) -> str:
    """BraTS 2021 case identifier of case ``index``."""
    return f"BraTS2021_{index:05d}"


def write_brain_case(case: BrainCase, folder: Path, name: str) -> None:
    """Write one case's files into ``folder`` (BraTS 2021 names plus ``_seg_clean``): the layout's
    modalities (``data.layouts.BRAIN_MODALITIES``), whatever else was simulated.

    Raises:
        ValueError: a modality the layout stores was not simulated.
    """
    for modality, volume in case.stored(BRAIN_MODALITIES, "BraTS", name).items():
        write_nifti(volume, case.affine, folder / f"{name}_{modality}.nii.gz")
    write_nifti(case.label, case.affine, folder / f"{name}_seg.nii.gz")
    write_nifti(case.truth, case.affine, folder / f"{name}_seg_clean.nii.gz")


NOTICE = MNI_NOTICE
