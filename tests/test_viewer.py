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
