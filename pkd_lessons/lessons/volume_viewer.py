"""A 3D viewer for notebooks (NiiVue, through ``ipyniivue``), with a static fallback.

The case is shown in three planes and a volume rendering, at its own voxel-to-world geometry (the
affine), with one overlay at a time: the truth, a prediction (teacher, student) or the errors of the
difference view (red where only the student is wrong, blue where only the teacher is, amber where both
are). A dropdown picks the overlay, a slider its opacity. Colours are the slice viewer's
(:mod:`~pkd_lessons.lessons.viewer`).

The volumes travel to the browser as NIfTI bytes made in memory; nothing is written to disk and nothing
is fetched from the network. NiiVue draws with WebGL 2. Like the slice viewer, the widget's display
bundle also carries a PNG: axial, coronal and sagittal slices through the centre of the tumour with the
current overlay, shown where widgets do not run (GitHub, nbviewer, a notebook executed headless).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np

from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.lessons.viewer import (
    DIFF_COLOURS,
    ERRORS,
    StaticPicture,
    checked,
    class_colours,
    overlay_classes,
    render_slice,
    windowed,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What is missing when ipyniivue cannot be imported, and the remedy.
MISSING = "the 3D viewer needs ipyniivue (NiiVue for Jupyter): pip install ipyniivue"
#: The planes of the static picture: name and the axis each is cut across.
PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))


def _niivue():
    """The ipyniivue module, or an ImportError that says how to install it."""
    try:
        import ipyniivue
    except ImportError as error:
        raise ImportError(MISSING) from error
    return ipyniivue


def nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """An uncompressed NIfTI-1 file of ``array`` at ``affine``, in memory.

    Args:
        array: the voxels.
        affine: voxel-to-world matrix (4 x 4).

    Returns:
        The file's bytes.

    Example:
        >>> import nibabel as nib
        >>> data = nifti_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.diag([2.0, 2, 2, 1]))
        >>> image = nib.Nifti1Image.from_bytes(data)
        >>> image.shape, float(image.affine[0, 0]), int(image.get_fdata()[1, 2, 3])
        ((2, 3, 4), 2.0, 23)
    """
    import nibabel as nib

    image = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm")
    return image.to_bytes()


def crosshair_fraction(voxel: Sequence[int], shape: Sequence[int], affine: np.ndarray) -> list[float]:
    """Where NiiVue's cross-hair goes for a voxel: its fractional position in the volume turned to RAS.

    NiiVue shows every volume reoriented to RAS (right, anterior, superior) and places its cross-hair
    by fractions of that reoriented volume, so a voxel's fractions are permuted and flipped as the
    affine orients the file's axes. BraTS files are stored with the first two axes flipped, the
    phantoms without.

    Args:
        voxel: the voxel's indices in the file's axis order.
        shape: the volume's spatial shape.
        affine: its voxel-to-world matrix.

    Returns:
        ``[x, y, z]`` fractions in RAS order, each in (0, 1).

    Example:
        The voxel (10, 20, 30) of a 100-voxel cube, in an RAS file and in one whose first two axes run
        left and posterior (as BraTS files do):

        >>> crosshair_fraction((10, 20, 30), (100, 100, 100), np.eye(4))
        [0.105, 0.205, 0.305]
        >>> crosshair_fraction((10, 20, 30), (100, 100, 100), np.diag([-1.0, -1.0, 1.0, 1.0]))
        [0.895, 0.795, 0.305]
    """
    import nibabel as nib

    fractions = [0.5, 0.5, 0.5]
    for axis, (target, flip) in enumerate(nib.orientations.io_orientation(np.asarray(affine))):
        fraction = (voxel[axis] + 0.5) / shape[axis]
        fractions[int(target)] = round(fraction if flip > 0 else 1.0 - fraction, 6)
    return fractions


def tumour_centre(volume: CaseVolume) -> tuple[int, int, int]:
    """The voxel at the centre of mass of the truth's labelled voxels (the volume's centre if none).

    Args:
        volume: the case.

    Returns:
        Its ``(x, y, z)`` indices.
    """
    truth = volume.truth if volume.truth is not None else volume.label
    where = np.argwhere(truth > 0) if truth is not None else np.empty((0, 3))
    if not len(where):
        return tuple(int(n) // 2 for n in volume.shape)
    return tuple(int(round(c)) for c in where.mean(axis=0))


def overlay_key(volume: CaseVolume, overlay: str) -> dict[str, tuple[int, int, int]]:
    """What each colour of an overlay means: name to RGB.

    Args:
        volume: the case.
        overlay: ``"truth"`` or a prediction's name (the classes), :data:`~pkd_lessons.lessons.viewer.ERRORS`
            (the error groups) or ``"none"`` (nothing).

    Returns:
        The key, background left out.
    """
    if overlay == ERRORS:
        return dict(DIFF_COLOURS)
    if overlay == "none":
        return {}
    colours, names = class_colours(volume.convention.num_classes), volume.convention.class_names
    return {names[k]: tuple(int(v) for v in colours[k]) for k in range(1, len(names))}


def planes_figure(
    volume: CaseVolume,
    modality: str,
    overlay: str = "truth",
    alpha: float = 0.5,
    predictions: Mapping[str, np.ndarray] | None = None,
    centre: tuple[int, int, int] | None = None,
) -> Figure:
    """Axial, coronal and sagittal slices through one voxel, with an overlay: the 3D viewer's static view.

    Args:
        volume: the case.
        modality: which image to show.
        overlay: ``"truth"``, a key of ``predictions``, :data:`~pkd_lessons.lessons.viewer.ERRORS` or
            ``"none"``.
        alpha: overlay opacity in [0, 1].
        predictions: class maps with the volume's shape.
        centre: the voxel the slices go through (default: :func:`tumour_centre`).

    Returns:
        The figure (not registered with pyplot: nothing is shown unless it is displayed).

    Raises:
        ValueError: as :func:`~pkd_lessons.lessons.viewer.render_slice`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    centre = centre or tumour_centre(volume)
    views = [
        render_slice(volume, centre[axis], modality, overlay, alpha, predictions, zoom=1, axis=axis)
        for _, axis in PLANES
    ]
    fig = Figure(figsize=(10.5, 3.9))
    axes = fig.subplots(1, len(PLANES))
    spacing = volume.spacing
    for ax, (name, axis), view in zip(axes, PLANES, views):
        # the in-plane voxel sizes: columns are the earlier remaining axis, rows the later one
        cols, rows = (spacing[a] for a in range(3) if a != axis)
        ax.imshow(view, aspect=rows / cols, interpolation="nearest")
        ax.set_title(f"{name}, slice {centre[axis]}", fontsize=10)
        ax.axis("off")
    handles = [Patch(color=np.array(c) / 255, label=name) for name, c in overlay_key(volume, overlay).items()]
    fig.suptitle(f"{volume.case_id}: {modality}, overlay: {overlay}", fontsize=11)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
    return fig


class VolumeViewer(StaticPicture, widgets.VBox):
    """Interactive 3D viewer of a case (NiiVue) with truth, prediction and error overlays.

    The NiiVue widget is :attr:`view`; each overlay is a label volume of it, and the one chosen in
    :attr:`overlay` is drawn at the opacity of :attr:`alpha` (the others at 0).

    Args:
        volume: the case.
        predictions: class maps keyed by name (``"teacher"``, ``"student"``, ...), each of the volume's
            shape. With a ``"teacher"`` and a ``"student"``, the ``"errors"`` overlay is offered too.
        modality: the image shown (default: the case's first modality).
        alpha: first overlay opacity in [0, 1].
        height: the view's height in pixels.

    Raises:
        ImportError: ipyniivue is not installed.
        TypeError: ``volume`` is not a :class:`~pkd_lessons.data.volumes.CaseVolume`.
        ValueError: a volume or prediction the viewer cannot show (as
            :class:`~pkd_lessons.lessons.viewer.SliceViewer`), or an unknown modality.
    """

    def __init__(
        self,
        volume: CaseVolume,
        predictions: Mapping[str, np.ndarray] | None = None,
        modality: str | None = None,
        alpha: float = 0.5,
        height: int = 480,
    ) -> None:
        nv = _niivue()
        predictions = checked(volume, predictions)
        modality = modality or volume.modalities[0]
        if modality not in volume.modalities:
            raise ValueError(f"{volume.case_id} has no modality {modality!r}; it has {volume.modalities}")
        self.volume, self.predictions, self.modality = volume, predictions, modality
        self.centre = tumour_centre(volume)
        truth = volume.truth if volume.truth is not None else volume.label
        names = (["truth"] if truth is not None else []) + list(predictions)
        if truth is not None and "teacher" in predictions and "student" in predictions:
            names.append(ERRORS)
        self.layers = {name: self._label_volume(nv, name) for name in names}
        self.view = nv.NiiVue(
            height=height,
            slice_type=nv.SliceType.MULTIPLANAR,
            multiplanar_show_render=nv.ShowRender.ALWAYS,
            multiplanar_layout=nv.MultiplanarType.GRID,
            is_nearest_interpolation=True,  # voxels as they are: the labels' edges stay sharp
            show_3d_crosshair=True,
            is_colorbar=False,
            crosshair_color=(1.0, 1.0, 1.0, 0.6),
        )
        self.view.load_volumes([self._image_volume(nv), *self.layers.values()])
        self.view.scene.crosshair_pos = crosshair_fraction(self.centre, volume.shape, volume.affine)
        self.overlay = widgets.Dropdown(options=[*names, "none"], value=names[0] if names else "none")
        self.overlay.description = "overlay"
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="opacity")
        self.legend = widgets.HTML()
        for control in (self.overlay, self.alpha):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([self.overlay, self.alpha]), self.view, self.legend])
        self._update()

    def _image_volume(self, nv):
        """The modality's image as the slice viewer shows it: 1st to 99th percentile in the mask mapped to 0-255
        (8 bits a voxel travel to the browser, not 32), black outside the mask."""
        gray = windowed(self.volume.channel(self.modality), self.volume.mask)
        return nv.Volume(
            data=nifti_bytes(np.round(gray).astype(np.uint8), self.volume.affine),
            name=f"{self.volume.case_id}_{self.modality}.nii",
            colormap="gray",
            cal_min=0.0,
            cal_max=255.0,
        )

    def _label_volume(self, nv, name: str):
        """One overlay as a label volume with its colour table (background transparent), hidden at first."""
        classes, colours = overlay_classes(self.volume, name, self.predictions)
        labels = list(overlay_key(self.volume, name))
        layer = nv.Volume(
            data=nifti_bytes(classes.astype(np.uint8), self.volume.affine),
            name=f"{self.volume.case_id}_{name}.nii",
            opacity=0.0,
        )
        layer.set_colormap_label(
            {
                "R": [int(c[0]) for c in colours],
                "G": [int(c[1]) for c in colours],
                "B": [int(c[2]) for c in colours],
                "A": [0] + [255] * (len(colours) - 1),
                "labels": ["", *labels],
            }
        )
        return layer

    def _update(self, *_) -> None:
        for name, layer in self.layers.items():
            layer.opacity = float(self.alpha.value) if name == self.overlay.value else 0.0
        keys = overlay_key(self.volume, self.overlay.value)
        swatches = " · ".join(f"<span style='color:rgb{c}'>■</span> {name}" for name, c in keys.items())
        self.legend.value = f"<small>{swatches}</small>"

    def figure(self) -> Figure:
        """The static three-plane picture of the current overlay and opacity (see :func:`planes_figure`)."""
        return planes_figure(
            self.volume, self.modality, self.overlay.value, self.alpha.value, self.predictions, self.centre
        )

    def static_png(self) -> bytes:
        """PNG bytes of :meth:`figure`."""
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def _text(self) -> str:
        return f"VolumeViewer({self.volume.case_id}, {self.modality}, overlay {self.overlay.value})"
