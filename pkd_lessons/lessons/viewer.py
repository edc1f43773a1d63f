"""An interactive slice viewer for notebooks, with a static fallback.

Controls: slice slider, modality selector, overlay (truth, teacher, student or none) with an opacity
slider, and a difference view that colours where the student and the teacher are wrong.

The viewer is an ``ipywidgets`` box whose display bundle also carries a PNG of its current view:
JupyterLab and Colab show the live widget; a notebook executed headless (papermill, nbval) or viewed
where widgets do not run (GitHub, nbviewer) shows the picture instead of failing.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np
from matplotlib import image as mpimg

from pkd_lessons.data.volumes import CaseVolume

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

#: The installed ipywidgets' major version: 8 in the project's environment, 7 on Colab today.
IPYWIDGETS_MAJOR = int(widgets.__version__.split(".")[0])
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: RGB colour of each class index, by number of classes (brain 4, heart 6).
CLASS_COLOURS = {
    4: np.array([[0, 0, 0], [255, 77, 109], [255, 214, 10], [76, 201, 240]], dtype=np.float32),
    6: np.array(
        [[0, 0, 0], [255, 77, 109], [255, 214, 10], [76, 201, 240], [128, 237, 153], [199, 125, 255]], dtype=np.float32
    ),
}
#: Difference view: student wrong where the teacher is right, the reverse, both wrong.
DIFF_COLOURS = {
    "student wrong, teacher right": (239, 35, 60),
    "teacher wrong, student right": (67, 97, 238),
    "both wrong": (255, 183, 3),
}


#: Overlay name of the difference view: where the student and the teacher are wrong against the truth.
ERRORS = "errors"


def class_colours(num_classes: int) -> np.ndarray:
    """RGB colour table of the class indices: row ``k`` is the colour of class ``k`` (0, background: black).

    Args:
        num_classes: number of classes, background included.

    Returns:
        ``(num_classes, 3)`` ``float32`` array in [0, 255].
    """
    if num_classes in CLASS_COLOURS:
        return CLASS_COLOURS[num_classes]
    rng = np.random.default_rng(0)
    return np.vstack([[0, 0, 0], rng.integers(60, 255, (num_classes - 1, 3))]).astype(np.float32)


def error_classes(truth: np.ndarray, teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """Each voxel's group in the difference view, numbered as :data:`DIFF_COLOURS` orders them.

    Args:
        truth: class indices.
        teacher: the teacher's class indices, of the truth's shape.
        student: the student's class indices, of the truth's shape.

    Returns:
        ``uint8`` array of the truth's shape: 0 where the student is right, or both are; 1 where only the
        student is wrong; 2 where only the teacher is; 3 where both are.

    Example:
        >>> error_classes(np.array([0, 1, 1, 2]), np.array([0, 1, 0, 0]), np.array([0, 0, 1, 0]))
        array([0, 1, 2, 3], dtype=uint8)
    """
    s_wrong, t_wrong = np.asarray(student) != truth, np.asarray(teacher) != truth
    groups = np.zeros(np.shape(truth), np.uint8)
    groups[s_wrong & ~t_wrong] = 1
    groups[t_wrong & ~s_wrong] = 2
    groups[s_wrong & t_wrong] = 3
    return groups


#: Colour table of :func:`error_classes`' groups (row 0, no error: black).
ERROR_COLOURS = np.array([[0, 0, 0], *DIFF_COLOURS.values()], dtype=np.float32)


def overlay_classes(
    volume: CaseVolume,
    overlay: str,
    predictions: Mapping[str, np.ndarray] | None = None,
    where: tuple | slice = np.s_[...],
) -> tuple[np.ndarray, np.ndarray] | None:
    """The class map an overlay colours, and its colour table.

    Args:
        volume: the case.
        overlay: ``"truth"``, a key of ``predictions``, :data:`ERRORS` (the difference view) or ``"none"``.
        predictions: class maps with the volume's shape.
        where: the part of the volume wanted (an index expression, e.g. one slice); default all of it.

    Returns:
        ``(classes, colours)``: the overlay's class indices within ``where`` (0: nothing drawn) and the RGB
        row of each index; None for ``"none"``.

    Raises:
        ValueError: an unknown overlay, or a difference view without teacher and student predictions
            and a truth.
    """
    predictions = dict(predictions or {})
    truth = volume.truth if volume.truth is not None else volume.label
    if overlay == ERRORS:
        if "teacher" not in predictions or "student" not in predictions or truth is None:
            raise ValueError("the difference view needs 'teacher' and 'student' predictions and a truth")
        return error_classes(truth[where], predictions["teacher"][where], predictions["student"][where]), ERROR_COLOURS
    if overlay == "none":
        return None
    source = {"truth": truth, **predictions}
    if overlay not in source or source[overlay] is None:
        raise ValueError(f"overlay must be one of {['none', *source]}, got {overlay!r}")
    return source[overlay][where], class_colours(volume.convention.num_classes)


def windowed(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey levels of an image as the viewers show it: its 1st to 99th percentile inside the mask mapped
    to 0-255, black outside the mask (as on the scanner).

    Args:
        image: intensities (a slice or a volume).
        mask: foreground voxels, same shape.

    Returns:
        Float grey levels in [0, 255], same shape.
    """
    inside = image[mask]
    lo, hi = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
    gray = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    gray[~mask] = 0
    return gray


def render_slice(
    volume: CaseVolume,
    index: int,
    modality: str,
    overlay: str = "truth",
    alpha: float = 0.4,
    predictions: Mapping[str, np.ndarray] | None = None,
    difference: bool = False,
    zoom: int = 3,
    axis: int = 2,
) -> np.ndarray:
    """Compose one view as an RGB image.

    Args:
        volume: the case.
        index: slice index along ``axis``.
        modality: which image to show.
        overlay: ``"truth"``, a key of ``predictions`` (e.g. ``"teacher"``, ``"student"``), :data:`ERRORS`
            or ``"none"``.
        alpha: overlay opacity in [0, 1].
        predictions: class maps with the volume's shape.
        difference: colour student/teacher errors against the truth instead of the overlay (the
            :data:`ERRORS` overlay).
        zoom: integer upscaling (nearest neighbour) for display.
        axis: the axis the slice is cut across: 2 axial (the default), 1 coronal, 0 sagittal.

    Returns:
        ``(H * zoom, W * zoom, 3)`` ``uint8`` image: rows are the slice's later remaining axis, flipped so
        that anterior (axial) or superior (coronal, sagittal) is up, as the static figures show it; columns
        the earlier one.

    Raises:
        ValueError: unknown overlay or modality, out-of-range slice or axis, or a difference view without
            teacher and student predictions.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if not 0 <= index < volume.shape[axis]:
        raise ValueError(f"slice {index} outside 0..{volume.shape[axis] - 1}")
    where = (slice(None),) * axis + (index,)
    base = volume.channel(modality)[where]
    gray = windowed(base, volume.mask[where])
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    shown = overlay_classes(volume, ERRORS if difference else overlay, predictions, where)
    if shown is not None:
        classes, colours = shown
        fg = classes > 0
        rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colours[classes[fg]]
    out = np.clip(rgb, 0, 255).astype(np.uint8).transpose(1, 0, 2)[::-1]
    return out.repeat(zoom, axis=0).repeat(zoom, axis=1)


def error_figure(
    volume: CaseVolume,
    index: int,
    predictions: Mapping[str, np.ndarray],
    modalities: tuple[str, ...] = ("flair", "t1ce"),
    alpha: float = 0.8,
) -> plt.Figure:
    """The difference view of one slice in several modalities side by side, with its colour key.

    The static counterpart of :class:`SliceViewer` with *errors* ticked: red where only the student
    is wrong, blue where only the teacher is, amber where both are; the truth's whole tumour is
    outlined in white over them.

    Args:
        volume: the case.
        index: slice index along the last axis.
        predictions: ``"teacher"`` and ``"student"`` class maps with the volume's shape.
        modalities: the images shown underneath, one panel each.
        alpha: opacity of the error colours.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: as :func:`render_slice`.
    """
    import matplotlib.pyplot as plt  # imported here: the widget alone does not need pyplot
    from matplotlib.patches import Patch

    views = [
        render_slice(volume, index, m, predictions=predictions, difference=True, alpha=alpha, zoom=1)
        for m in modalities
    ]  # first, so that bad input leaves no figure behind
    fig, axes = plt.subplots(1, len(modalities), figsize=(3.5 * len(modalities), 3.6), squeeze=False)
    # the whole tumour (every labelled class) in the views' orientation: rows = the second axis, flipped
    tumour = (volume.truth[:, :, index] > 0).T[::-1] if volume.truth is not None else None
    for ax, m, view in zip(axes[0], modalities, views):
        ax.imshow(view)
        if tumour is not None and tumour.any():
            ax.contour(tumour.astype(float), levels=[0.5], colors=["white"], linewidths=0.8)
        ax.set_title(f"{m}, slice {index}")
        ax.axis("off")
    fig.legend(
        handles=[Patch(color=np.array(c) / 255, label=name) for name, c in DIFF_COLOURS.items()]
        + [Patch(facecolor="none", edgecolor="0.4", label="truth: whole tumour (white outline)")],
        loc="lower center",
        ncol=2,
        frameon=False,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB array as PNG (matplotlib's writer; no figure involved)."""
    buffer = io.BytesIO()
    mpimg.imsave(buffer, rgb, format="png")
    return buffer.getvalue()


def checked(volume: CaseVolume, predictions: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Refuse what a viewer cannot show, naming the problem (rather than failing deep in rendering).

    Args:
        volume: the case.
        predictions: class maps keyed by name, each of the volume's shape.

    Returns:
        The predictions as arrays.

    Raises:
        TypeError: ``volume`` is not a :class:`~pkd_lessons.data.volumes.CaseVolume`.
        ValueError: a volume whose image is not 4-D (one channel per modality), whose mask, truth or label
            does not match its image, or a prediction whose shape differs from the volume's.
    """
    if not isinstance(volume, CaseVolume):
        raise TypeError(f"volume must be a CaseVolume (from pkd_lessons.data.load_case), got {type(volume).__name__}")
    shape = np.shape(volume.image)
    if len(shape) != 4 or shape[0] != len(volume.modalities):
        raise ValueError(
            f"volume {volume.case_id!r}: image must be 4-D (modality, X, Y, Z) with one channel "
            f"per modality {tuple(volume.modalities)}, got shape {shape}"
        )
    for name in ("mask", "truth", "label"):
        array = getattr(volume, name)
        if array is not None and np.shape(array) != shape[1:]:
            raise ValueError(f"volume {volume.case_id!r}: {name} has shape {np.shape(array)}, the image {shape[1:]}")
    predictions = {k: np.asarray(v) for k, v in (predictions or {}).items()}
    for name, p in predictions.items():
        if p.shape != volume.shape:
            raise ValueError(f"prediction {name!r} has shape {p.shape}, the volume {volume.shape}")
    return predictions


class StaticPicture:
    """A widget whose display bundle carries a PNG of its current view beside the widget itself.

    Mixed in before the widget class (``class V(StaticPicture, widgets.VBox)``); the subclass says what the
    picture and the text are. Where a front-end runs the widget it shows the widget; elsewhere (GitHub,
    nbviewer, a notebook executed headless) the picture.
    """

    def static_png(self) -> bytes:
        """PNG bytes of the current view."""
        raise NotImplementedError

    def _text(self) -> str:
        """The bundle's ``text/plain``."""
        return type(self).__name__

    def _repr_mimebundle_(self, **kwargs):
        base = getattr(super(), "_repr_mimebundle_", None)
        if base is not None:  # ipywidgets 8
            bundle = dict(base(**kwargs) or {})
        else:  # ipywidgets 7 (what Colab ships): the view reference its own _ipython_display_ sends
            bundle = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": self._model_id}}
        bundle["image/png"] = base64.b64encode(self.static_png()).decode()
        bundle["text/plain"] = self._text()
        return bundle

    if IPYWIDGETS_MAJOR < 8:
        # ipywidgets 7 displays widgets through _ipython_display_, which IPython prefers to
        # _repr_mimebundle_; route it through the bundle above so that the picture goes along.
        def _ipython_display_(self, **kwargs) -> None:
            from IPython.display import display

            display(self._repr_mimebundle_(), raw=True)
            self._handle_displayed(**kwargs)


class SliceViewer(StaticPicture, widgets.VBox):
    """Interactive viewer of a case with truth, teacher and student overlays.

    Args:
        volume: the case.
        predictions: class maps keyed by name (``"teacher"``, ``"student"``, ...), each of the
            volume's shape.
        index: first slice shown (default: the slice with most labelled voxels).
        zoom: display upscaling.

    Raises:
        TypeError: ``volume`` is not a :class:`~pkd_lessons.data.volumes.CaseVolume`.
        ValueError: a volume whose image is not 4-D (one channel per modality), whose mask, truth or label
            does not match its image, or a prediction whose shape differs from the volume's.
    """

    def __init__(
        self,
        volume: CaseVolume,
        predictions: Mapping[str, np.ndarray] | None = None,
        index: int | None = None,
        zoom: int = 3,
    ) -> None:
        predictions = checked(volume, predictions)
        self.volume, self.predictions, self.zoom = volume, predictions, zoom
        if index is None:
            truth = volume.truth if volume.truth is not None else volume.label
            index = int(np.argmax((truth > 0).sum((0, 1)))) if truth is not None else volume.shape[2] // 2
        self.slice = widgets.IntSlider(
            value=index, min=0, max=volume.shape[2] - 1, description="slice", continuous_update=True
        )
        self.modality = widgets.Dropdown(options=list(volume.modalities), description="modality")
        overlays = ["truth", *predictions, "none"]
        self.overlay = widgets.ToggleButtons(options=overlays, description="overlay")
        self.alpha = widgets.FloatSlider(value=0.4, min=0.0, max=1.0, step=0.05, description="opacity")
        can_diff = "teacher" in predictions and "student" in predictions
        self.difference = widgets.Checkbox(value=False, description="errors: student vs teacher", disabled=not can_diff)
        self.image = widgets.Image(format="png")
        legend = " · ".join(f"<span style='color:rgb{c}'>■</span> {name}" for name, c in DIFF_COLOURS.items())
        self.legend = widgets.HTML(f"<small>{legend}</small>" if can_diff else "")
        for control in (self.slice, self.modality, self.overlay, self.alpha, self.difference):
            control.observe(self._update, names="value")
        super().__init__(
            [
                widgets.HBox([self.slice, self.modality]),
                self.overlay,
                widgets.HBox([self.alpha, self.difference]),
                self.image,
                self.legend,
            ]
        )
        self._update()
        # At its own pixel size: a box stretches its children to the output's width, which would blow
        # the picture up to a blurred page-high image.
        self.image.layout.width = f"{self.current().shape[1]}px"

    def current(self) -> np.ndarray:
        """The RGB image of the current view."""
        return render_slice(
            self.volume,
            self.slice.value,
            self.modality.value,
            self.overlay.value,
            self.alpha.value,
            self.predictions,
            self.difference.value,
            self.zoom,
        )

    def _update(self, *_) -> None:
        self.image.value = png_bytes(self.current())

    def static_png(self) -> bytes:
        """PNG bytes of the current view (what the widget shows)."""
        return self.image.value

    def _text(self) -> str:
        return f"SliceViewer({self.volume.case_id}, slice {self.slice.value})"
