"""Command-line entry points of the ``data_download/`` scripts (also ``python -m pkd_lessons.realdata.commands``).

Each returns an exit status: 0 done / all cases fine, 1 cases with problems, 2 unusable input or a
failed download (one line on stderr naming the file or address and the problem).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pkd_lessons.errors import DataError
from pkd_lessons.realdata.checkers import NOT_COREGISTERED, check_brats, check_myops
from pkd_lessons.realdata.decathlon import TASK01, default_root, fetch_task01, is_complete


def _guard(prog: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except DataError as err:  # DownloadError included
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def fetch_task01_main(argv: Sequence[str] | None = None, prog: str = "fetch_decathlon_task01.py") -> int:
    """``fetch_decathlon_task01.py [--root DIR] [--keep-archive] [--url URL --md5 MD5] [--quiet]``
    (also ``pkd-lessons data fetch decathlon ...``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Download the Medical Segmentation Decathlon's Task01_BrainTumour (about 7 GB, "
        f"{TASK01.licence}), check its MD5, extract it and check that every case loads. An interrupted "
        f"download resumes when run again; a finished one is not fetched again.",
    )
    parser.add_argument(
        "--root",
        default=None,
        help=f"cache folder (default: $MONAI_DATA_DIRECTORY, else $PKD_LESSONS_DATA/real; now {default_root()})",
    )
    parser.add_argument("--keep-archive", action="store_true", help="keep the .tar after extracting it")
    parser.add_argument("--url", default=None, help=f"a mirror of the archive (default: MONAI's, {TASK01.url})")
    parser.add_argument("--md5", default=None, help=f"the mirror's MD5 if it differs (default: {TASK01.md5})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def body() -> int:
        root = args.root or default_root()
        already = is_complete(f"{root}/{TASK01.name}")
        folder = fetch_task01(args.root, args.url, args.md5, args.keep_archive, not args.quiet, args.timeout)
        print(f"{'already there' if already else 'ready'}: {folder}")
        print(f"use it with: real_data_dir = {str(folder)!r} in lesson 09, or PKD_BRATS_DIR={folder}")
        return 0

    return _guard(parser.prog, body)


def _report(report) -> int:
    print(report.to_text())
    return 0 if report.ok else 1


def _checker_options(parser: argparse.ArgumentParser, unlabelled: str) -> argparse.ArgumentParser:
    """The options both checkers share."""
    parser.add_argument("path", help="the folder or archive as downloaded")
    parser.add_argument("--no-labels", action="store_true", help=f"{unlabelled}: no label expected")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also read every image: finds truncated files, non-finite values and empty images (slow)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_brats_main(argv: Sequence[str] | None = None, prog: str = "check_brats.py") -> int:
    """``check_brats.py PATH [--year 2021] [--no-labels] [--deep]`` (also ``pkd-lessons data check brats``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a BraTS download (folder, .zip or .tar) case by case: the four modalities and the "
        "label present, one grid per case, label values of that year. Writes nothing.",
    )
    parser.add_argument("--year", type=int, default=2021, help="BraTS edition, 2017-2021 or 2023 (default 2021)")
    args = _checker_options(parser, "a validation set").parse_args(argv)
    return _guard(
        parser.prog, lambda: _report(check_brats(args.path, args.year, not args.no_labels, args.deep, not args.quiet))
    )


def check_myops_main(argv: Sequence[str] | None = None, prog: str = "check_myops.py") -> int:
    """``check_myops.py PATH [--dataset myops|mscmrseg] [--no-labels] [--deep]`` (also
    ``pkd-lessons data check myops``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a MyoPS 2020 or MS-CMRSeg 2019 download (folder, .zip or .tar) case by case: bSSFP (C0), "
        f"LGE (DE) and T2 present, labels and their values, grids. Writes nothing. {NOT_COREGISTERED}.",
    )
    parser.add_argument("--dataset", choices=("myops", "mscmrseg"), default="myops", help="default: myops")
    args = _checker_options(parser, "a test set").parse_args(argv)
    return _guard(
        parser.prog,
        lambda: _report(check_myops(args.path, args.dataset, not args.no_labels, args.deep, not args.quiet)),
    )


COMMANDS = {"fetch-task01": fetch_task01_main, "check-brats": check_brats_main, "check-myops": check_myops_main}
#: ``pkd-lessons data ACTION DATASET ...``: the same commands under the package's own entry point.
DATA_COMMANDS = {
    ("fetch", "decathlon"): fetch_task01_main,
    ("check", "brats"): check_brats_main,
    ("check", "myops"): check_myops_main,
}


def data_main(action: str, dataset: str, argv: Sequence[str]) -> int:
    """``pkd-lessons data fetch decathlon [...]``, ``data check brats PATH [...]``, ``data check myops PATH [...]``.

    Args:
        action: ``"fetch"`` or ``"check"``.
        dataset: ``"decathlon"`` (fetch), ``"brats"`` or ``"myops"`` (check; MS-CMRSeg through
            ``myops --dataset mscmrseg``).
        argv: the options of that command (``--help`` lists them).

    Returns:
        The command's exit status; 2 for a combination that does not exist.
    """
    command = DATA_COMMANDS.get((action, dataset))
    if command is None:
        known = ", ".join(f"{a} {d}" for a, d in DATA_COMMANDS)
        print(f"pkd-lessons data: error: no command {action} {dataset}; known: {known}", file=sys.stderr)
        return 2
    return command(list(argv), prog=f"pkd-lessons data {action} {dataset}")


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m pkd_lessons.realdata.commands {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
