"""Generate the site's lesson, API and benchmark pages from the sources, before Sphinx reads them.

* ``lessons/NN_*.ipynb``: the notebooks as ``make lessons`` executed them (``results/notebooks``, or
  ``$PKD_EXECUTED_LESSONS``). The build refuses a lesson that did not run cleanly or was executed from
  an older version of its notebook. Each page loses papermill's injected cell (it holds the paths of
  the machine that ran it), gains a note saying how it was executed, and ends with the package names
  the lesson imports, each linked to its API entry.
* ``api/<area>.md``: one page per subpackage of :mod:`pkd_lessons`, autodoc of each module, with the
  lessons that import from that module linked back.
* ``performance/index.md``: every report in ``docs/benchmarks/`` as a table and a figure.
* ``phantom/index.md``: the brain phantom's tissue values and acquisitions, and what its T1ce student
  loses in the stored reference results beside what a T1ce-only network loses on real BraTS.

Nothing is copied by hand: change a notebook, a docstring or a report and the next build shows it.
Files are rewritten only when their content changes, so Sphinx rebuilds only what changed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

import pkd_lessons
from pkd_lessons.lessons.assignments import student_edition
from pkd_lessons.project import home

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "pkd_lessons"
#: The API pages in the order the data flows; the package root's own modules come last.
AREAS = ("phantoms", "data", "models", "losses", "methods", "training", "evaluation", "lessons", "realdata")
GLOSSARY_URL = f"{home()}/blob/main/docs/glossary.md"
COLAB_BADGE_URL = "https://colab.research.google.com/assets/colab-badge.svg"
#: Generated folders under docs/ (git-ignored).
GENERATED = ("lessons", "api", "performance", "phantom")


@dataclass
class LessonUses:
    """What one lesson imports from the package."""

    name: str  # notebook stem, e.g. 04_pixel_distillation
    title: str  # its first heading, e.g. "04 Pixel-level distillation"
    targets: dict[str, str] = field(default_factory=dict)  # imported name -> dotted target
    modules: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # module -> names


def edition() -> str:
    """The site's edition: ``instructor`` (default: solutions, hidden tests and model answers shown) or
    ``student`` (``$PKD_SITE_EDITION``; the exercises as a learner gets them)."""
    value = os.environ.get("PKD_SITE_EDITION", "instructor")
    if value not in ("instructor", "student"):
        raise ExtensionError(f"PKD_SITE_EDITION must be 'instructor' or 'student', got {value!r}")
    return value


def executed_folder() -> Path:
    """Where the executed notebooks are: ``$PKD_EXECUTED_LESSONS`` or ``results/notebooks``."""
    return Path(os.environ.get("PKD_EXECUTED_LESSONS", REPO / "results" / "notebooks")).resolve()


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps Sphinx's incremental build incremental)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _documented_constants() -> dict[str, str]:
    """Module-level names documented with ``#:`` comments: name -> defining module (first found)."""
    found: dict[str, str] = {}
    for module in leaf_modules():
        for (scope, name), _ in ModuleAnalyzer.for_module(module).find_attr_docs().items():
            if scope == "":
                found.setdefault(name, module)
    return found


def resolve(module: str, name: str, constants: dict[str, str]) -> tuple[str, str]:
    """The dotted name an imported ``name`` is documented under, and the module that defines it.

    Functions and classes are found through ``__module__``; constants through their ``#:`` comment;
    anything else links to the module it was imported from.
    """
    obj = getattr(importlib.import_module(module), name)
    if inspect.ismodule(obj):
        return obj.__name__, obj.__name__
    home = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and home and home.startswith(PACKAGE):
        return f"{home}.{obj.__qualname__}", home
    if name in constants:
        return f"{constants[name]}.{name}", constants[name]
    return module, module


def lesson_uses(notebook: Path, constants: dict[str, str]) -> LessonUses:
    """Parse a lesson's code cells for ``from pkd_lessons... import ...``."""
    nb = nbformat.read(notebook, as_version=4)
    first = nb.cells[0].source.splitlines()[0]
    uses = LessonUses(notebook.stem, first.lstrip("# ").strip())
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a stub of an exercise; the build's notebook checks report real errors
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
                for alias in node.names:
                    target, home = resolve(node.module, alias.name, constants)
                    uses.targets[alias.name] = target
                    uses.modules[home].add(alias.name)
    return uses


def leaf_modules(packages: bool = False) -> list[str]:
    """Every public module of the package, in name order; with ``packages``, the subpackages of the
    areas (such as ``lessons.figures``) too."""
    found = []
    for info in pkgutil.walk_packages(pkd_lessons.__path__, f"{PACKAGE}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if not info.ispkg or (packages and info.name.count(".") > 1):
            found.append(info.name)
    return sorted(found)


def _summary(obj) -> str:
    """The first paragraph of a docstring, its reST roles (``:func:`x```) written as MyST's (``{py:func}`x```)."""
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return re.sub(r"(?<![\w`]):(func|class|mod|meth|attr|data|obj|exc):`", r"{py:\1}`", first)


def lesson_page(executed: Path, source: Path, uses: LessonUses) -> str:
    """The site's copy of one executed lesson (JSON of the notebook).

    Raises:
        ExtensionError: the lesson stopped on an error, or its notebook changed since it was executed.
    """
    nb = nbformat.read(executed, as_version=4)
    original = nbformat.read(source, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if [(c.cell_type, c.source) for c in cells] != [(c.cell_type, c.source) for c in original.cells]:
        raise ExtensionError(
            f"{executed} was executed from another version of {source.relative_to(REPO)}: run `make lessons` again"
        )
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise ExtensionError(f"{executed} stopped on {errors[0].get('ename')}: the lesson did not run cleanly")
    if edition() == "student":
        nb = student_edition(nb)
        cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    cells[0].source = (
        cells[0].source.replace(COLAB_BADGE_URL, "../_static/colab-badge.svg").replace(GLOSSARY_URL, "../glossary.md")
    )
    papermill = nb.metadata.get("papermill", {})
    profile = papermill.get("parameters", {}).get("profile", "quick")
    when = str(papermill.get("end_time") or "")[:10]
    note = nbformat.v4.new_markdown_cell(
        ":::{note}\n"
        f"This page is the lesson as `make lessons` executed it ({edition()} edition, profile `{profile}`"
        + (f", {when}" if when else "")
        + "): the numbers and figures are that run's. Run it yourself with the Colab button above, or "
        "`make lessons` in a clone; the [API pages](../api/index.md) hold the code it imports.\n:::"
    )
    used = [
        f"- {{py:obj}}`{name} <{target}>`" + (f": {summary}" if (summary := _summary(_lookup(target))) else "")
        for name, target in sorted(uses.targets.items(), key=lambda kv: kv[0].lower())
    ]
    closing = nbformat.v4.new_markdown_cell(
        "## The package behind this lesson\n\nWhat this lesson imports from `pkd_lessons`, linked to its API entry:\n\n"
        + "\n".join(used)
    )
    note.id, closing.id = "site-note", "site-api"  # fixed ids: the page is rewritten only when it changes
    nb.cells = [cells[0], note, *cells[1:], closing]
    # The site runs no widgets (conf.py loads no widget manager): the viewers show their pictures, and the
    # widgets' saved state (the 3D viewer's: NiiVue's code and the case's volumes, megabytes) would only
    # weigh the page down.
    nb.metadata.pop("widgets", None)
    return nbformat.writes(nb)


def _lookup(dotted: str):
    """The object a dotted name points to (a module, or an attribute of one)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ExtensionError(f"cannot import {dotted}")


def area_page(area: str | None, lessons: list[LessonUses]) -> str:
    """The API page of one subpackage (``None``: the package root's own modules)."""
    package = f"{PACKAGE}.{area}" if area else PACKAGE
    modules = [
        m
        for m in leaf_modules(packages=True)
        if (m.startswith(f"{package}.") if area else m.count(".") == 1 and m != package)
    ]
    if not area:
        modules = [m for m in modules if m.split(".")[1] not in AREAS]
    title = area.capitalize() if area else "Package root"
    # autodoc writes reStructuredText, so its directives sit in eval-rst blocks (MyST would read Markdown)
    lines = [f"# {title}", "", "```{eval-rst}", f".. automodule:: {package}", "```", ""]
    for module in modules:
        lines += [f"## `{module}`", ""]
        explained = [(u, sorted(u.modules[module])) for u in lessons if module in u.modules]
        if explained:
            links = "; ".join(
                f"[{u.title}](../lessons/{u.name}.ipynb) ({', '.join(f'`{n}`' for n in names)})"
                for u, names in explained
            )
            lines += [f"**Explained in** {links}.", ""]
        is_package = hasattr(importlib.import_module(module), "__path__")
        options = [] if is_package else ["   :members:", "   :show-inheritance:"]
        lines += ["```{eval-rst}", f".. automodule:: {module}", *options, "```", ""]
    return "\n".join(lines)


def api_index() -> str:
    lines = [
        "# API reference",
        "",
        "One page per part of the package, in the order the data flows through it: phantoms are written in",
        "the real data sets' layouts, read by `data`, segmented by `models`, trained by `training` with the",
        "`losses` each of the `methods` adds, scored by `evaluation`; `lessons` holds what the notebooks",
        "share, `realdata` the downloads.",
        "Each module names the lessons that explain it.",
        "",
        "```{toctree}",
        ":maxdepth: 2",
        "",
        *AREAS,
        "root",
        "```",
        "",
    ]
    return "\n".join(lines)


def performance_page(reports: list[Path], out: Path) -> str:
    """Every benchmark report as a table and a figure (the figures are written beside the page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pkd_lessons.lessons.figures.training import benchmark_figure
    from pkd_lessons.training.benchmark import benchmark_table

    lines = [
        "# Performance",
        "",
        "Training throughput measured by `pkd-lessons benchmark`, one section per report in `docs/benchmarks/`.",
        "(a) is the model alone (forward, backward, optimizer step on a batch already in place); (b) the whole",
        "training step with the data pipeline; their ratio shows what the pipeline costs.",
        "",
    ]
    if not any(json.loads(p.read_text()).get("device_type") == "cuda" for p in reports):
        lines += [
            "No GPU report yet: the GPU profiles are not measured. `pkd-lessons benchmark --out "
            "docs/benchmarks/<name>.json` on a GPU machine adds one.",
            "",
        ]
    for path in reports:
        report = json.loads(path.read_text())
        figure = benchmark_figure(report)
        png = out / f"{path.stem}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(png, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure)
        lines += [
            f"## {path.stem}",
            "",
            benchmark_table(report),
            "",
            f"```{{figure}} {png.name}",
            f":alt: training throughput, {report['device']}",
            "",
            f"Slices per second of each method, {report['device']} ({path.name}).",
            "```",
            "",
        ]
    lines += GPU_INPUT_PATH
    for path in sorted((out.parent / "benchmarks" / "speedups").glob("*.json")):
        lines += speedup_section(path)
    return "\n".join(lines)


GPU_INPUT_PATH = [
    "## Keeping a GPU busy",
    "",
    "On a GPU one training step of these networks takes milliseconds, so the way a batch *reaches* the",
    "GPU decides the speed as much as the network does. The trainer therefore keeps the training slices",
    "(`float16`) and the teacher's cached outputs **on the GPU** when they fit (in pinned host memory with",
    "asynchronous copies when they do not), draws and **augments each batch there** (flips, intensity,",
    "a small affine, all in one pass for the batch), runs the networks **channels-last** in bf16/fp16, and",
    "never makes a step wait for the host to read a loss value. `torch.compile` (`TrainConfig(compile=True)`,",
    "`pkd-lessons train --compile`) can speed a step up further, but it first spends a minute or more",
    "tracing and compiling: worth it for the full profile's thousands of steps, not for the quick",
    "profile's hundreds, hence off by default.",
    "",
]


def speedup_section(path: Path) -> list[str]:
    """A report of ``docs/benchmarks/cpu_speedups.py`` as a table of before/after ratios."""
    from pkd_lessons.markdown import markdown_table

    report = json.loads(path.read_text())
    rows = [
        [
            r["what"],
            f"{r['before']}: {r['ms_before']:.1f} ms",
            f"{r['after']}: {r['ms_after']:.1f} ms",
            f"x{r['ms_before'] / r['ms_after']:.2f}",
        ]
        for r in report["rows"]
        if "ms_before" in r
    ]
    extra = [f"{r['what']}: {r['seconds']:.0f} s" for r in report["rows"] if "seconds" in r]
    return [
        f"## What each CPU speed-up buys ({path.stem})",
        "",
        f"`python docs/benchmarks/cpu_speedups.py`, {report['threads']} threads, torch {report['torch']}, "
        f"bf16 in hardware: {'yes' if report['bf16_native'] else 'no'}, {report['date'][:10]}; each pair timed "
        "alternately in one run, the fastest of six rounds (the quick profile's student: widths 8-64, "
        "batch 16, 64x64 windows).",
        "",
        markdown_table(["what", "before", "after", "speed-up"], rows),
        "",
        *(["; ".join(extra) + ".", ""] if extra else []),
    ]


def phantom_page() -> str:
    """The brain phantom's physics and its calibration against real BraTS, from the package's own data."""
    from pkd_lessons.lessons.reference import reference_gap_section
    from pkd_lessons.markdown import markdown_table
    from pkd_lessons.phantoms import brain

    tissues = markdown_table(
        ["tissue", "PD (water fraction)", "T1 (ms)", "T2 (ms)", "gadolinium (mmol/l)"],
        [[name, p["pd"], p["t1"], p["t2"], p["gd"]] for name, p in brain.TISSUES.items()],
    )
    sequences = markdown_table(
        ["modality", "equation", "parameters (ms, degrees)", "after gadolinium"],
        [
            [
                m,
                f"`{a.equation.__name__}`",
                ", ".join(f"{k} {v:g}" for k, v in a.params.items()),
                "yes" if a.contrast else "no",
            ]
            for m, a in brain.SEQUENCES.items()
        ],
    )
    return "\n".join(
        [
            "# The brain phantom beside real BraTS",
            "",
            "The brain phantom computes its four images from tissue proton density, T1 and T2 with the",
            "sequences' signal equations, at 3 T, with tissue values from the MR literature (their sources",
            "are in {py:data}`pkd_lessons.phantoms.brain.TISSUES`); gadolinium shortens T1 with relaxivity",
            f"{brain.RELAXIVITY:g} /(mmol/l s), and the lesion pushes the healthy anatomy aside by the volume",
            "it adds ({py:mod}`pkd_lessons.phantoms.mass_effect`).",
            "",
            tissues,
            "",
            sequences,
            "",
            "## What the T1ce student loses",
            "",
            "The physics is calibrated against one number per region: how much Dice a network that sees",
            "only T1ce loses against one that sees all four modalities. Papers that trained both on real",
            "BraTS give the range; the reference results give the phantom's loss, with its 95 % interval",
            "(the teacher one run held fixed, the baseline's seeds and the held-out cases crossed).",
            "",
            reference_gap_section(),
            "",
        ]
    )


def lesson_pages(executed: Path) -> tuple[list[Path], list[LessonUses], list[str]]:
    """The lesson notebooks, what each imports, and the site's page of each (checked).

    Raises:
        ExtensionError: a lesson is missing from ``executed``, failed, or is stale.
    """
    sources = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [s.name for s in sources if not (executed / s.name).is_file()]
    if missing:
        raise ExtensionError(
            f"the site shows the executed lessons, and {executed} lacks {', '.join(missing)}: run `make lessons` "
            "first (or set PKD_EXECUTED_LESSONS to a folder of executed notebooks)"
        )
    constants = _documented_constants()
    lessons = [lesson_uses(s, constants) for s in sources]
    return sources, lessons, [lesson_page(executed / s.name, s, u) for s, u in zip(sources, lessons)]


def generate(app: Sphinx) -> None:
    """Write the generated pages into the source folder."""
    src = Path(app.srcdir)
    executed = executed_folder()
    sources, lessons, pages = lesson_pages(executed)
    for s, page in zip(sources, pages):
        write_if_changed(src / "lessons" / s.name, page)
    for stale in set((src / "lessons").glob("*.ipynb")) - {src / "lessons" / s.name for s in sources}:
        stale.unlink()
    for area in AREAS:
        write_if_changed(src / "api" / f"{area}.md", area_page(area, lessons))
    write_if_changed(src / "api" / "root.md", area_page(None, lessons))
    write_if_changed(src / "api" / "index.md", api_index())
    reports = sorted((src / "benchmarks").glob("*.json"))
    write_if_changed(src / "performance" / "index.md", performance_page(reports, src / "performance"))
    write_if_changed(src / "phantom" / "index.md", phantom_page())
    logger.info(f"pkd_site: {len(sources)} lessons from {executed}, {len(AREAS) + 1} API pages, {len(reports)} reports")


def resolve_reexport(app: Sphinx, env, node, contnode):
    """Resolve a reference to a name a package re-exports (``:func:`segmentation_loss``` in the
    docstring of :mod:`pkd_lessons.losses`) to the entry of the module that defines it."""
    if node.get("refdomain") != "py":
        return None
    target, module = node["reftarget"], node.get("py:module") or ""
    for candidate in (target, f"{module}.{target}"):
        if not candidate.startswith(f"{PACKAGE}."):
            continue
        try:
            obj = _lookup(candidate)
        except (ExtensionError, AttributeError):
            continue
        home = getattr(obj, "__module__", None)
        if home and home.startswith(PACKAGE) and hasattr(obj, "__qualname__"):
            real = f"{home}.{obj.__qualname__}"
            if real != candidate:
                domain = env.get_domain("py")
                return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)
    return None


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve_reexport)
    return {"version": pkd_lessons.__version__, "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # `make docs` checks the executed lessons first, to say in one line what is wrong
    import sys

    try:
        lesson_pages(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else executed_folder())
    except ExtensionError as err:
        print(f"make docs: {err}", file=sys.stderr)
        raise SystemExit(2) from None
