"""What the notebooks stand on: the lesson helper, the runner, profiles, figures and published numbers.

* :mod:`~pkd_lessons.lessons.lesson` - :class:`Lesson`: a notebook's parameters, data and shared runs.
* :mod:`~pkd_lessons.lessons.profiles` - run profiles (tiny, quick, lab, reference, full).
* :mod:`~pkd_lessons.lessons.runner` - executes the notebooks end to end and writes their summary.
* :mod:`~pkd_lessons.lessons.figures` - static figures; :mod:`~pkd_lessons.lessons.viewer` - the
  interactive slice viewer; :mod:`~pkd_lessons.lessons.volume_viewer` - the 3D viewer (NiiVue).
* :mod:`~pkd_lessons.lessons.published` - the paper's and other published numbers, as data.
* :mod:`~pkd_lessons.lessons.reference` - the reference results the lessons print beside their own.
* :mod:`~pkd_lessons.lessons.synthesis` - lesson 06's closing reading of the paper's claim, from a run's numbers.
* :mod:`~pkd_lessons.lessons.assignments` - exercises in nbgrader's markup and the student versions.
"""

from pkd_lessons._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".lesson": "Lesson Run progress_bars show verdicts",
        "..markdown": "markdown_table",
        ".profiles": "PROFILES default_data_root get_profile",
        ".runner": "find_notebooks run_lessons",
        ".viewer": "SliceViewer error_figure render_slice",
        ".volume_viewer": "VolumeViewer planes_figure",
        ".published": "gap_markdown published_markdown t1ce_gaps",
        ".reference": "load_reference reference_gap_section reference_records reference_section",
        ".synthesis": "PAPER_CLAIM claim_reading synthesis",
        ".assignments": "exercises student_version write_assignments",
    },
)
