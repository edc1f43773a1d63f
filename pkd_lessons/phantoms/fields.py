"""Random smooth fields and the image degradations built from them.

Every function takes a :class:`numpy.random.Generator`, so a phantom is a pure function of its seed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def smooth_field(
    shape: Sequence[int], rng: np.random.Generator, spacing_mm: Sequence[float], scale_mm: float
) -> np.ndarray:
    """Gaussian random field with unit standard deviation and correlation length ``scale_mm``.

    White noise is drawn on a coarse grid (one node per ``scale_mm``) and interpolated with
    cubic splines, which is far cheaper than filtering full-resolution noise.

    Args:
        shape: output shape.
        rng: random generator.
        spacing_mm: voxel size per axis.
        scale_mm: distance over which the field varies.

    Returns:
        ``float32`` field of ``shape``, about zero mean and unit standard deviation.

    Examples:
        A field on a 64 x 64 grid of 2 mm pixels that varies over 20 mm: neighbouring pixels are
        almost equal, pixels 20 mm apart are partly alike, pixels 60 mm apart nearly independent:

        >>> import numpy as np
        >>> field = smooth_field((64, 64), np.random.default_rng(0), spacing_mm=(2.0, 2.0), scale_mm=20.0)
        >>> field.shape, field.dtype, round(float(field.std()), 3)
        ((64, 64), dtype('float32'), 1.0)
        >>> def correlation(pixels):
        ...     return round(float(np.corrcoef(field[:, :-pixels].ravel(), field[:, pixels:].ravel())[0, 1]), 2)
        >>> correlation(1), correlation(10), correlation(30)
        (0.99, 0.48, 0.07)
    """
    coarse = [max(2, int(np.ceil(n * s / scale_mm)) + 2) for n, s in zip(shape, spacing_mm)]
    noise = rng.standard_normal(coarse)
    # Cubic-spline interpolation is linear and separable on a tensor grid, so one small matrix per
    # axis does the work of a full-volume map_coordinates call at a fraction of the cost.
    field = noise
    for axis, (c, n) in enumerate(zip(coarse, shape)):
        field = np.moveaxis(np.tensordot(_spline_matrix(c, n), field, axes=([1], [axis])), 0, axis)
    std = field.std()
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _spline_matrix(coarse: int, fine: int) -> np.ndarray:
    """Matrix mapping ``coarse`` spline nodes to ``fine`` points spread over nodes 1..coarse-2."""
    points = np.linspace(1.0, coarse - 2.0, fine)
    eye = np.eye(coarse)
    return np.stack(
        [ndimage.map_coordinates(eye[j], points[None], order=3, mode="nearest") for j in range(coarse)], axis=1
    )


def random_displacement(
    shape: Sequence[int], rng: np.random.Generator, spacing_mm: Sequence[float], amplitude_mm: float, scale_mm: float
) -> np.ndarray:
    """Smooth random displacement field, in voxels of the output grid.

    Args:
        shape: output shape (D axes).
        rng: random generator.
        spacing_mm: voxel size per axis.
        amplitude_mm: standard deviation of the displacement per axis.
        scale_mm: correlation length of the deformation.

    Returns:
        ``(D, *shape)`` displacement in voxels.
    """
    return np.stack([smooth_field(shape, rng, spacing_mm, scale_mm) * (amplitude_mm / s) for s in spacing_mm])


def bias_field(
    shape: Sequence[int],
    rng: np.random.Generator,
    spacing_mm: Sequence[float],
    strength: float,
    scale_mm: float = 120.0,
) -> np.ndarray:
    """Multiplicative intensity inhomogeneity ``exp(strength * smooth field)``.

    Args:
        shape: output shape.
        rng: random generator.
        spacing_mm: voxel size per axis.
        strength: standard deviation of the log-gain (0.1 is a mild 3 T bias).
        scale_mm: how slowly the gain varies.

    Returns:
        ``float32`` gain around 1.
    """
    return np.exp(strength * smooth_field(shape, rng, spacing_mm, scale_mm)).astype(np.float32)


def rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise: ``|S + n_re + i n_im|``.

    This is the noise of magnitude MR images: Gaussian where the signal is high, biased
    upwards (Rayleigh) where it is low.

    Args:
        signal: noise-free magnitude image.
        sigma: standard deviation of each noise component.
        rng: random generator.

    Returns:
        ``float32`` noisy magnitude image.

    Examples:
        Where there is no signal the noise does not average out: its mean is
        ``sigma * sqrt(pi / 2)``, about 1.25 sigma. Where the signal is strong the noise is
        Gaussian around it:

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> dark = rician_noise(np.zeros(100_000, dtype=np.float32), sigma=1.0, rng=rng)
        >>> round(float(dark.mean()), 2), round(float(np.sqrt(np.pi / 2)), 2)
        (1.25, 1.25)
        >>> bright = rician_noise(np.full(100_000, 20.0, dtype=np.float32), sigma=1.0, rng=rng)
        >>> round(float(bright.mean()), 1), round(float(bright.std()), 1)
        (20.0, 1.0)
    """
    real = signal + np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.hypot(real, imag).astype(np.float32)


def partial_volume_blur(image: np.ndarray, spacing_mm: Sequence[float], fwhm_mm: float | Sequence[float]) -> np.ndarray:
    """Gaussian blur of full width at half maximum ``fwhm_mm`` (the scanner's point spread).

    Args:
        image: image to blur.
        spacing_mm: voxel size per axis.
        fwhm_mm: width of the point spread function, one for every axis or one per axis (a 2-D
            acquisition's slice profile is wider across its slices than in their plane).

    Returns:
        Blurred ``float32`` image.
    """
    widths = np.broadcast_to(np.asarray(fwhm_mm, dtype=np.float64), (len(spacing_mm),))
    sigma = [w / (2.3548 * s) for w, s in zip(widths, spacing_mm)]
    return ndimage.gaussian_filter(image.astype(np.float32), sigma, mode="nearest")
