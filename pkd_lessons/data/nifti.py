"""Read and write NIfTI files with nibabel, turning every failure into a clear :class:`DataError`."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from pkd_lessons.atomic import atomic_file
from pkd_lessons.errors import DataError

#: The most voxels one image may hold (512^3, 0.5 GiB as float32): far above any MRI volume these
#: lessons read (BraTS: 240x240x155 = 8.9 M; the Decathlon's 4-D images: 36 M), far below what a
#: corrupt or hostile header can claim. Checked on the header, before any data are read.
MAX_VOXELS = 512**3


def read_nifti(path: str | os.PathLike, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI image and check that its values are finite.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        dtype: dtype of the returned array (after nibabel's scaling).

    Returns:
        ``(array, affine)`` with the array in the file's own axis order.

    Raises:
        DataError: the file is missing, not NIfTI, truncated or corrupt, claims an empty or huge
            image in its header (checked before the data are read), or holds NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        shape = tuple(int(n) for n in img.header.get_data_shape())
        if not shape or min(shape) < 1:
            raise DataError(f"{path}: the header gives an empty image (shape {shape})")
        if np.prod(shape, dtype=np.float64) > MAX_VOXELS:
            raise DataError(
                f"{path}: the header gives {'x'.join(map(str, shape))} voxels, more than any MRI "
                f"volume ({MAX_VOXELS:,} at most); the file is damaged or not an MRI image"
            )
        array = np.asarray(img.dataobj, dtype=dtype)
    except DataError:
        raise
    except (
        EOFError,
        OSError,
        zlib.error,
        gzip.BadGzipFile,
        nib.filebasedimages.ImageFileError,
        ValueError,
        MemoryError,
    ) as err:
        raise DataError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{path}: {bad} voxels are NaN or infinite")
    return array, np.asarray(img.affine, dtype=np.float64)


def write_nifti(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``array`` as NIfTI atomically and reproducibly (same array, same bytes).

    nibabel writes gzip files with a zero timestamp, so the bytes depend only on the content.

    Args:
        array: image or label volume; its dtype is kept.
        affine: 4x4 voxel-to-world matrix.
        path: destination ending in ``.nii`` or ``.nii.gz``.

    Returns:
        The destination path.
    """
    path = Path(path)
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_file(path) as tmp:
        nib.save(img, str(tmp))
    return path


def write_like(array: np.ndarray, reference: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write a label volume atomically with the header of the image it was computed from.

    The reference's affine, qform and sform (with their codes), voxel size and units are kept, so a
    viewer lays the file exactly over the image; shape and data type become the array's, and the
    intensity scaling and display window are dropped (labels are stored as they are). A 4-D
    reference (a Decathlon image) gives its spatial header to the 3-D array.

    Args:
        array: ``(X, Y, Z)`` label volume in the reference's voxel grid; its integer dtype is kept.
        reference: the image file whose header is copied.
        path: destination ending in ``.nii.gz`` or ``.nii``.

    Returns:
        The destination path.

    Raises:
        DataError: the reference cannot be read, or its spatial shape is not the array's.
    """
    reference, path = Path(reference), Path(path)
    try:
        ref = nib.load(str(reference))
    except (OSError, nib.filebasedimages.ImageFileError, ValueError) as err:
        raise DataError(f"{reference}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    array = np.asarray(array)
    if tuple(ref.shape[:3]) != array.shape:
        raise DataError(f"{reference}: spatial shape {tuple(ref.shape[:3])} differs from the label's {array.shape}")
    header = ref.header.copy()
    header.set_data_shape(array.shape)
    header.set_data_dtype(array.dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_intent("label")
    header["cal_min"], header["cal_max"] = 0, 0  # the image's display window is not the labels'
    header["descrip"] = b"segmentation"
    img = nib.Nifti1Image(array, None, header=header)
    with atomic_file(path) as tmp:
        nib.save(img, str(tmp))
    return path
