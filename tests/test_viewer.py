"""The slice viewer: renders every view, reacts to its controls, degrades to a picture, refuses bad shapes."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from conftest import REPO
from pkd_lessons.data import find_cases, load_case
from pkd_lessons.lessons.viewer import SliceViewer, render_slice


@pytest.fixture(scope="module")
def case(brain_set):
    return load_case(find_cases(brain_set)[0])


@pytest.fixture(scope="module")
def predictions(case):
    student = case.truth.copy()
    student[student == 2] = 0  # a student that misses the oedema
    return {"teacher": case.truth.copy(), "student": student}


def test_controls_change_the_picture(case, predictions):
    viewer = SliceViewer(case, predictions)
    shown = {bytes(viewer.image.value)}
    viewer.slice.value = viewer.slice.value - 3
    shown.add(bytes(viewer.image.value))
    viewer.modality.value = "t1ce"
    shown.add(bytes(viewer.image.value))
    viewer.overlay.value = "student"
    shown.add(bytes(viewer.image.value))
    viewer.alpha.value = 0.9
    shown.add(bytes(viewer.image.value))
    viewer.difference.value = True
    shown.add(bytes(viewer.image.value))
    assert len(shown) == 6, "every control changes the rendered image"


def test_difference_view_marks_student_errors(case, predictions):
    index = int(np.argmax((case.truth == 2).sum((0, 1))))
    plain = render_slice(case, index, "flair", overlay="none", zoom=1)
    diff = render_slice(case, index, "flair", predictions=predictions, difference=True, alpha=1.0, zoom=1)
    changed = (plain != diff).any(-1)
    expected = (case.truth[:, :, index] == 2).T[::-1]  # the oedema the student missed, display orientation
    assert np.array_equal(changed, expected)
    assert (diff[changed] == (239, 35, 60)).all()


def test_static_fallback_in_the_display_bundle(case, predictions):
    bundle = SliceViewer(case, predictions)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG")
    assert bundle["text/plain"].startswith("SliceViewer(")


def test_display_sends_the_widget_and_the_picture(case, predictions, monkeypatch):
    """What IPython sends to the front-end when the viewer is a cell's value, under the installed
    ipywidgets (and under the oldest declared: the next test)."""
    from IPython.core.formatters import DisplayFormatter
    from IPython.core.interactiveshell import InteractiveShell

    sent = []
    shell = InteractiveShell.instance()
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, *a, **k: sent.append(data))
    viewer = SliceViewer(case, predictions)
    data, _ = shell.display_formatter.format(viewer)
    if not data:  # ipywidgets 7: the viewer published itself through _ipython_display_
        data = sent[-1]
    assert isinstance(shell.display_formatter, DisplayFormatter)
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(data)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.model_id


def test_wrong_shape_refused(case):
    with pytest.raises(ValueError, match=r"prediction 'student' has shape \(3, 3, 3\)"):
        SliceViewer(case, {"student": np.zeros((3, 3, 3), np.uint8)})


def test_wrong_volume_refused(case):
    with pytest.raises(TypeError, match="volume must be a CaseVolume.*got ndarray"):
        SliceViewer(case.image)
    flat = dataclasses.replace(case, image=case.image[0])
    with pytest.raises(ValueError, match=r"image must be 4-D \(modality, X, Y, Z\).*got shape \(\d+, \d+, \d+\)"):
        SliceViewer(flat)
    one_channel = dataclasses.replace(case, image=case.image[:1])
    with pytest.raises(ValueError, match="one channel per modality"):
        SliceViewer(one_channel)
    small_mask = dataclasses.replace(case, mask=case.mask[:-1])
    with pytest.raises(ValueError, match="mask has shape"):
        SliceViewer(small_mask)


def test_bad_view_arguments(case, predictions):
    with pytest.raises(ValueError, match="overlay must be one of"):
        render_slice(case, 0, "flair", overlay="oracle")
    with pytest.raises(ValueError, match="outside"):
        render_slice(case, 10_000, "flair")
    with pytest.raises(ValueError, match="needs 'teacher' and 'student'"):
        render_slice(case, 0, "flair", predictions={"teacher": predictions["teacher"]}, difference=True)
    with pytest.raises(KeyError, match="no modality 'lge'"):
        render_slice(case, 0, "lge")


def test_viewer_under_the_oldest_ipywidgets_declared():
    """Colab ships ipywidgets 7: this file's tests pass under the oldest version pyproject.toml
    accepts (installed beside the environment's by ``make install``, in ``.widgets-oldest``)."""
    oldest = REPO / ".widgets-oldest"
    if not (oldest / "ipywidgets").is_dir():
        pytest.skip("no .widgets-oldest folder: `make install` puts the oldest declared ipywidgets there")
    declared = next(
        r
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if r.startswith("ipywidgets")
    )
    minimum = re.search(r">=([0-9.]+)", declared).group(1)
    env = dict(os.environ, PYTHONPATH=str(oldest))
    version = subprocess.run(
        [sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith(minimum), f"{oldest} holds ipywidgets {version}, pyproject.toml declares {declared}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", __file__, "-k", "not oldest"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_error_figure_shows_each_modality_with_the_colour_key(case, predictions):
    from pkd_lessons.lessons.viewer import DIFF_COLOURS, error_figure

    index = int(np.argmax((case.truth == 2).sum((0, 1))))
    fig = error_figure(case, index, predictions, modalities=("flair", "t1ce", "t2"))
    assert [ax.get_title() for ax in fig.axes] == [f"{m}, slice {index}" for m in ("flair", "t1ce", "t2")]
    shown = fig.axes[0].get_images()[0].get_array()
    assert np.array_equal(
        shown, render_slice(case, index, "flair", predictions=predictions, difference=True, alpha=0.8, zoom=1)
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [*DIFF_COLOURS, "truth: whole tumour (white outline)"]
    assert all(ax.collections for ax in fig.axes)  # the truth's outline drawn on every panel
    with pytest.raises(ValueError, match="outside"):
        error_figure(case, 10_000, predictions)


def test_slices_across_each_axis(case, predictions):
    """Axial, coronal and sagittal slices: the right voxels, the later remaining axis flipped upwards."""
    x, y, z = (n // 2 for n in case.shape)
    for axis, index, expected in (
        (2, z, case.truth[:, :, z].T[::-1]),
        (1, y, case.truth[:, y, :].T[::-1]),
        (0, x, case.truth[x, :, :].T[::-1]),
    ):
        plain = render_slice(case, index, "flair", overlay="none", zoom=1, axis=axis)
        shown = render_slice(case, index, "flair", overlay="truth", alpha=1.0, zoom=1, axis=axis)
        assert plain.shape == (*expected.shape, 3)
        assert np.array_equal((plain != shown).any(-1), expected > 0), f"axis {axis}"
    with pytest.raises(ValueError, match="axis must be 0, 1 or 2"):
        render_slice(case, 0, "flair", axis=3)
    with pytest.raises(ValueError, match=r"slice 500 outside 0\.\.\d+"):
        render_slice(case, 500, "flair", axis=0)


def _nifti(layer):
    import nibabel as nib

    return nib.Nifti1Image.from_bytes(layer.data)


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ("truth", ["necrotic core", "oedema", "enhancing"]),
        ("teacher", ["necrotic core", "oedema", "enhancing"]),
        ("student", ["necrotic core", "oedema", "enhancing"]),
        ("errors", ["student wrong, teacher right", "teacher wrong, student right", "both wrong"]),
        ("none", []),
    ],
)
def test_volume_viewer_shows_the_chosen_overlay_only(case, predictions, overlay, key):
    from pkd_lessons.lessons.volume_viewer import VolumeViewer, overlay_key

    viewer = VolumeViewer(case, predictions, alpha=0.5)
    assert list(viewer.overlay.options) == ["truth", "teacher", "student", "errors", "none"]
    viewer.overlay.value = overlay
    viewer.alpha.value = 0.7
    assert {name: layer.opacity for name, layer in viewer.layers.items()} == {
        name: 0.7 if name == overlay else 0.0 for name in ("truth", "teacher", "student", "errors")
    }
    assert list(overlay_key(case, overlay)) == key
    assert re.findall(r"</span> (.*?)(?: · |</small>)", viewer.legend.value) == key  # the colour key shown
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert bundle["text/plain"] == f"VolumeViewer({case.case_id}, flair, overlay {overlay})"


def test_volume_viewer_layers_carry_the_case_and_its_geometry(case, predictions):
    from pkd_lessons.lessons.viewer import error_classes
    from pkd_lessons.lessons.volume_viewer import VolumeViewer, overlay_key

    viewer = VolumeViewer(case, predictions, modality="t1ce")
    image, *layers = viewer.view.volumes
    assert [layer.name for layer in layers] == [f"{case.case_id}_{n}.nii" for n in viewer.layers]
    expected = {
        "truth": case.truth,
        **predictions,
        "errors": error_classes(case.truth, predictions["teacher"], predictions["student"]),
    }
    for name, layer in viewer.layers.items():
        nifti = _nifti(layer)
        assert np.allclose(nifti.affine, case.affine), name
        assert np.array_equal(np.asarray(nifti.dataobj), expected[name]), name
        assert layer.colormap_label.labels[1:] == list(overlay_key(case, name)), name
    nifti = _nifti(image)
    gray = np.asarray(nifti.dataobj)
    assert np.allclose(nifti.affine, case.affine) and gray.shape == case.shape and gray.dtype == np.uint8
    assert not gray[~case.mask].any() and gray[case.mask].max() == 255
    # brighter in T1ce is brighter in the viewer: the windowing keeps the order of the voxels
    t1ce = case.channel("t1ce")[case.mask]
    assert np.corrcoef(t1ce, gray[case.mask])[0, 1] > 0.9


@pytest.mark.parametrize("overlay", ["truth", "errors", "none"])
def test_three_planes_through_the_tumour(case, predictions, overlay):
    from pkd_lessons.lessons.volume_viewer import PLANES, overlay_key, planes_figure, tumour_centre

    centre = tumour_centre(case)
    assert case.truth[centre] > 0  # the phantoms' tumours are compact: their centre lies inside them
    fig = planes_figure(case, "flair", overlay, 0.6, predictions)
    panels = fig.axes[: len(PLANES)]
    assert [ax.get_title() for ax in panels] == [f"{name}, slice {centre[axis]}" for name, axis in PLANES]
    for ax, (_, axis) in zip(panels, PLANES):
        expected = render_slice(case, centre[axis], "flair", overlay, 0.6, predictions, zoom=1, axis=axis)
        assert np.array_equal(ax.get_images()[0].get_array(), expected)
    legend = [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []
    assert legend == list(overlay_key(case, overlay))


def test_volume_viewer_refuses_what_it_cannot_show(case, predictions, monkeypatch):
    from pkd_lessons.lessons.volume_viewer import VolumeViewer

    with pytest.raises(ValueError, match=r"prediction 'student' has shape \(3, 3, 3\)"):
        VolumeViewer(case, {"student": np.zeros((3, 3, 3), np.uint8)})
    with pytest.raises(ValueError, match="no modality 'lge'"):
        VolumeViewer(case, predictions, modality="lge")
    with pytest.raises(TypeError, match="volume must be a CaseVolume"):
        VolumeViewer(case.image)
    monkeypatch.setitem(sys.modules, "ipyniivue", None)  # what an environment without it does on import
    with pytest.raises(ImportError, match="pip install ipyniivue"):
        VolumeViewer(case, predictions)
