"""The ``pkd-lessons`` command.

Sub-commands:

* ``phantoms brain|cardiac --out DIR --cases N --seed S``: write a phantom data set.
* ``check DIR``: find, read and check every case of a data folder; print what it holds.
* ``lessons --profile quick|full --out DIR``: run every lesson notebook and write a summary.

Bad arguments or data end with exit status 2 and one line saying why.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pkd_lessons import __version__
from pkd_lessons.errors import DataError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pkd-lessons``."""
    parser = argparse.ArgumentParser(
        prog="pkd-lessons",
        description="Lessons on privileged multimodal knowledge distillation for unimodal segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"pkd-lessons {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ph = sub.add_parser("phantoms", help="write a phantom data set in a real data set's layout",
                        description="Write BraTS-like brain or MyoPS-like cardiac phantoms as NIfTI. "
                                    "The folder appears complete or not at all.")
    ph.add_argument("kind", choices=["brain", "cardiac"],
                    help="brain: BraTS 2021 layout on the MNI template; cardiac: MyoPS 2020 layout")
    ph.add_argument("--out", required=True, help="destination folder (must not exist unless --overwrite)")
    ph.add_argument("--cases", type=_positive, default=20, help="number of cases (default 20)")
    ph.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    ph.add_argument("--voxel-mm", type=float, default=None,
                    help="brain voxel size in mm (default 2; 1 is the template's own grid)")
    ph.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    ph.add_argument("--quiet", action="store_true", help="no progress bar")

    ck = sub.add_parser("check", help="check a data folder (phantom, BraTS, Decathlon or MyoPS)",
                        description="Find every case, read every file and check shapes, affines, "
                                    "intensities and label values. Writes nothing.")
    ck.add_argument("folder", help="the data folder")
    ck.add_argument("--no-labels", action="store_true", help="accept cases without label files")

    ls = sub.add_parser("lessons", help="execute the lesson notebooks and write a summary",
                        description="Generate the phantom data if needed, execute every lesson with "
                                    "papermill and write OUT/SUMMARY.md.")
    ls.add_argument("--profile", choices=["quick", "full", "auto"], default="quick",
                    help="quick: CPU, a minute or two per lesson; full: GPU sizes; auto: full on a GPU")
    ls.add_argument("--out", default="results", help="output folder (default ./results)")
    ls.add_argument("--only", nargs="+", metavar="NN", help="run only these lessons, e.g. --only 00 01")
    ls.add_argument("--notebooks", default=None, help="folder of the notebooks (default ./notebooks)")
    ls.add_argument("--data", default=None, help="folder for the phantom sets (default OUT/data)")
    return parser


def _check(folder: str, require_labels: bool) -> int:
    from pkd_lessons.data import find_cases, load_case

    cases = find_cases(folder, require_labels=require_labels)
    print(f"{folder}: {len(cases)} case(s), layout {cases[0].layout}, modalities {', '.join(cases[0].modalities)}")
    for case in cases:
        v = load_case(case)
        counts = "" if v.truth is None else " ".join(
            f"{name}={int(r.sum())}" for name, r in zip(v.convention.region_names, v.regions()))
        spacing = "x".join(f"{s:g}" for s in v.spacing)
        clean = " (clean truth)" if case.truth is not None else ""
        print(f"  {case.case_id}: {'x'.join(map(str, v.shape))} @ {spacing} mm  {counts}{clean}")
    print("all cases readable and consistent")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "phantoms":
            from pkd_lessons.phantoms import make_phantoms

            out = make_phantoms(args.kind, args.out, args.cases, args.seed, voxel_mm=args.voxel_mm,
                                overwrite=args.overwrite, progress=not args.quiet)
            print(f"wrote {args.cases} {args.kind} case(s) to {out}")
            return 0
        if args.command == "check":
            return _check(args.folder, not args.no_labels)
        if args.command == "lessons":
            from pkd_lessons.lessons import run_lessons

            summary, runs = run_lessons(args.out, args.profile, args.notebooks, args.only, args.data)
            print(f"summary: {summary}")
            failed = [r.name for r in runs if not r.ok]
            if failed:
                print(f"pkd-lessons: error: lessons failed: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
    except (DataError, ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"pkd-lessons: error: {err}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
