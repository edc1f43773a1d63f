"""The ``pkd-lessons`` command.

Sub-commands:

* ``phantoms brain|cardiac --out DIR --cases N --seed S``: write a phantom data set.
* ``check DIR``: find, read and check every case of a data folder; print what it holds.
* ``train --method M --data DIR --out RUN [--profile faithful]``: train a teacher, a baseline or a distilled
  student (``faithful``: the reference code's 3D experiment).
* ``evaluate RUN/checkpoint.pt ... --data DIR --out metrics.json``: score on held-out cases.
* ``compare metrics.json ... --out DIR``: the results table over methods and seeds.
* ``lessons --profile quick|lab|full|auto --out DIR``: run every lesson notebook and write a summary.
* ``reference --out FILE``: train every method longer (the reference profile) and store the results.
* ``assignments --out DIR``: the student versions of the lessons (solutions and hidden tests removed).
* ``course --out DIR``: an nbgrader course of the lessons (``source/``, ``nbgrader_config.py``, the workflow).
* ``pretrain --profile P``: train and export the pretrained teachers shipped with the package.
* ``benchmark --out benchmark.json``: slices/s of the model step and the training step, and their ratio.

Bad arguments or data end with exit status 2 and one line saying why.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pkd_lessons import __version__
from pkd_lessons.data.layouts import STUDENT_MODALITY, student_modality
from pkd_lessons.errors import DataError, TrainingError
from pkd_lessons.lessons.profiles import PROFILES
from pkd_lessons.training.config import AMP_CHOICES, METHODS, PLACEMENTS, PRESETS, TEST_FRACTION, TrainConfig
from pkd_lessons.training.options import add_config_options, config_settings
from pkd_lessons.training.options import crop as _crop
from pkd_lessons.training.options import positive as _positive
from pkd_lessons.training.options import widths as _widths

#: The training options' defaults are TrainConfig's own: one home for each.
DEFAULT = TrainConfig()


def _seeds_of(text: str) -> dict[str, int]:
    """``baseline=10,pkl=10`` as ``{"baseline": 10, "pkl": 10}``; ``none`` as ``{}``."""
    if text.strip().lower() == "none":
        return {}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        method, _, count = part.partition("=")
        try:
            out[method.strip()] = int(count)
        except ValueError:
            example = "METHOD=N pairs such as baseline=10,pkl=10"
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}") from None
    return out


def build_parser(defaults: TrainConfig = DEFAULT) -> argparse.ArgumentParser:
    """The argument parser of ``pkd-lessons``.

    Args:
        defaults: where the training options take their defaults (a preset's configuration for
            ``train --profile``).
    """
    parser = argparse.ArgumentParser(
        prog="pkd-lessons",
        description="Lessons on privileged multimodal knowledge distillation for unimodal segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"pkd-lessons {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ph = sub.add_parser(
        "phantoms",
        help="write a phantom data set in a real data set's layout",
        description="Write BraTS-like brain or MyoPS-like cardiac phantoms as NIfTI. "
        "The folder appears complete or not at all.",
    )
    ph.add_argument(
        "kind",
        choices=["brain", "cardiac"],
        help="brain: BraTS 2021 layout on the MNI template; cardiac: MyoPS 2020 layout",
    )
    ph.add_argument("--out", required=True, help="destination folder (must not exist unless --overwrite)")
    ph.add_argument("--cases", type=_positive, default=20, help="number of cases (default 20)")
    ph.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    ph.add_argument(
        "--voxel-mm", type=float, default=None, help="brain voxel size in mm (default 2; 1 is the template's own grid)"
    )
    ph.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    ph.add_argument("--quiet", action="store_true", help="no progress bar")

    ck = sub.add_parser(
        "check",
        help="check a data folder (phantom, BraTS, Decathlon or MyoPS)",
        description="Find every case, read every file and check shapes, affines, "
        "intensities and label values. Writes nothing.",
    )
    ck.add_argument("folder", help="the data folder")
    ck.add_argument("--no-labels", action="store_true", help="accept cases without label files")

    tr = sub.add_parser(
        "train",
        help="train a teacher, the unimodal baseline or a distilled student",
        description="Train one network on the training part of a data folder and write "
        "OUT/checkpoint.pt (atomically; --resume continues an interrupted run) "
        "and OUT/history.json.",
    )
    tr.add_argument(
        "--method", required=True, choices=list(METHODS), help="; ".join(f"{k}: {v}" for k, v in METHODS.items())
    )
    tr.add_argument(
        "--profile",
        choices=list(PRESETS),
        default="default",
        help="where the settings start: default (2D slices, Adam: quick runs) or faithful (the reference "
        "code's experiment: 3D, 80^3 crops, batch 4, SGD at lr 1e-3, 60,000 steps); options given beside "
        "it replace its values",
    )
    tr.add_argument("--data", required=True, help="data folder (phantom, BraTS, Decathlon or MyoPS)")
    tr.add_argument("--out", required=True, help="run folder for the checkpoint and history")
    tr.add_argument("--teacher", default=None, help="the teacher's checkpoint (distilled methods)")
    tr.add_argument(
        "--modality",
        default=None,
        help="the student's modality (default: "
        + ", ".join(f"{m} for {anatomy}" for anatomy, m in STUDENT_MODALITY.items())
        + ")",
    )
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    # every other setting of the run: TrainConfig's fields, their defaults and their descriptions
    add_config_options(tr, defaults, skip=("method",))
    tr.add_argument(
        "--test-fraction",
        type=float,
        default=TEST_FRACTION,
        help=f"share of cases held out (default {TEST_FRACTION:g})",
    )
    tr.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split (default 0)")
    tr.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    tr.add_argument(
        "--stop-at",
        type=_positive,
        default=None,
        help="stop after this step with a checkpoint, to continue later with --resume (sessions with a time "
        "limit); the learning-rate schedule still runs over --steps",
    )
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    pr = sub.add_parser(
        "predict",
        help="write a checkpoint's segmentation of every case as NIfTI, in the data set's own format",
        description="Segment every case of a data folder (labels not needed; only the modalities the "
        "network reads) and write one NIfTI per case with the header of the case's image, the data "
        "set's own label values (BraTS 2021 1/2/4, BraTS 2023 1/2/3, Decathlon 1/2/3, MyoPS values) and "
        "the file names its challenge expects, plus predictions.json. For brain data, voxels that are zero "
        "in every input image are background. The folder appears complete or not at all.",
    )
    pr.add_argument("checkpoint", help="checkpoint file")
    pr.add_argument("--data", required=True, help="data folder (BraTS, BraTS 2023, Decathlon or MyoPS layout)")
    pr.add_argument("--out", required=True, help="folder to write (must not exist unless --overwrite)")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    pr.add_argument("--no-brain-mask", action="store_true", help="write the raw prediction outside the brain too")
    pr.add_argument("--overwrite", action="store_true", help="replace the folder (one this command wrote)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "evaluate",
        help="score checkpoints on held-out cases, or a folder of segmentations (Dice, HD95)",
        description="Predict every held-out case (those a checkpoint did not train on) and "
        "write per-case Dice and HD95 of every region as JSON; or, with --predictions, score the "
        "segmentation files of a folder (from 'predict' or any tool, named as the challenge names them).",
    )
    ev.add_argument("checkpoints", nargs="*", help="checkpoint files (or --predictions)")
    ev.add_argument("--predictions", default=None, help="a folder of segmentation files to score instead")
    ev.add_argument(
        "--lesion-wise",
        action="store_true",
        help="with --predictions: also the BraTS 2023 lesion-wise Dice and HD95 of each region (brain data)",
    )
    ev.add_argument("--data", required=True, help="data folder")
    ev.add_argument("--out", required=True, help="metrics JSON file to write (one record per checkpoint)")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument(
        "--no-brain-mask",
        action="store_true",
        help="score raw predictions; by default predictions outside the brain (the nonzero voxels "
        "of the skull-stripped images) are background, the BraTS convention",
    )

    cp = sub.add_parser(
        "compare",
        help="results table over methods and seeds",
        description="Mean and spread per method and region, and each method's difference from "
        "the baseline, paired by seed and by case, with a 95%% confidence interval for the crossed "
        "seeds x cases design, the detectable difference and the seeds needed to detect 1 point. "
        "Methods must share their seeds, cases and regions; a method with two records for one seed "
        "is refused.",
    )
    cp.add_argument("metrics", nargs="+", help="metrics JSON files from 'evaluate'")
    cp.add_argument("--out", required=True, help="folder for results.csv/.json/.md/.png")
    cp.add_argument("--baseline", default="baseline", help="method to compare against (default baseline)")
    cp.add_argument("--metric", choices=["dice", "hd95"], default="dice", help="metric (default dice)")

    dt = sub.add_parser(
        "data",
        help="download the Decathlon's Task01, or check a BraTS or MyoPS download",
        description="The data_download/ scripts under the package's entry point (fetch is the "
        "only command of the package that uses the network): `data fetch decathlon [--root DIR]`, "
        "`data check brats PATH [--year Y]`, `data check myops PATH [--dataset "
        "myops|mscmrseg]`. Add --help after the data set for its options.",
    )
    dt.add_argument("action", choices=["fetch", "check"], help="fetch (decathlon) or check (brats, myops)")
    dt.add_argument("dataset", choices=["decathlon", "brats", "myops"], help="the data set")
    dt.add_argument("options", nargs=argparse.REMAINDER, help="that command's options (--help lists them)")

    ls = sub.add_parser(
        "lessons",
        help="execute the lesson notebooks and write a summary",
        description="Generate the phantom data if needed, execute every lesson with "
        "papermill and write OUT/SUMMARY.md.",
    )
    ls.add_argument(
        "--profile",
        choices=[*PROFILES, "auto"],
        default="auto",
        help="auto (default, as the notebooks): lab on a GPU, else quick; quick: the CPU path, about 16 "
        "minutes for the series on 2 cores; lab: one classroom GPU such as Colab's T4; full: a larger GPU",
    )
    ls.add_argument("--out", default="results", help="output folder (default ./results)")
    ls.add_argument("--only", nargs="+", metavar="NN", help="run only these lessons, e.g. --only 00 01")
    ls.add_argument("--notebooks", default=None, help="folder of the notebooks (default ./notebooks)")
    ls.add_argument("--data", default=None, help="folder for the phantom sets (default OUT/data)")
    ls.add_argument(
        "--runs", default=None, help="folder for the trained runs (default $PKD_LESSONS_RUNS, else DATA/runs)"
    )

    pt = sub.add_parser(
        "pretrain",
        help="train the teachers of a profile and export them as the package's pretrained teachers",
        description="Train (or reuse) the brain and cardiac teachers as the lessons train them and write "
        "their weights and records into the package's pretrained teachers (pkd_lessons/lessons/teachers), "
        "which a lesson opened on its own then uses instead of training.",
    )
    pt.add_argument("--profile", default="quick", choices=["quick", "lab", "full"], help="profile (default quick)")
    pt.add_argument(
        "--datasets",
        nargs="+",
        default=["brain", "cardiac"],
        choices=["brain", "cardiac"],
        help="the teachers to train and export (default both)",
    )
    pt.add_argument("--data", default=None, help="folder for the phantoms (default $PKD_LESSONS_DATA)")
    pt.add_argument("--runs", default=None, help="folder for the runs (default $PKD_LESSONS_RUNS, else DATA/runs)")
    pt.add_argument("--out", default=None, help="folder to write (default: the package's pretrained teachers)")

    rf = sub.add_parser(
        "reference",
        help="train every method longer and store the results as the lessons' reference",
        description="Train the teacher, the baseline, the positive control and every distilled "
        "student in the reference profile (about 2 hours on 2 CPU cores; runs already trained are reused), and write "
        "their metrics, validation curves and provenance as JSON.",
    )
    rf.add_argument(
        "--out", default=None, help="JSON file (default: the package's pkd_lessons/lessons/reference_brain.json)"
    )
    rf.add_argument("--profile", default="reference", help="profile of the runs (default reference)")
    rf.add_argument(
        "--rescore",
        action="store_true",
        help="score the stored runs of --out again from their checkpoints in --data, without training "
        "them (after a change of prediction or metrics only; refused where training has changed)",
    )
    rf.add_argument("--data", default=None, help="folder for the phantoms and the runs (default $PKD_LESSONS_DATA)")
    rf.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds of every student method (default: the profile's); runs already trained are reused",
    )
    rf.add_argument(
        "--seeds-of",
        type=_seeds_of,
        default=None,
        metavar="METHOD=N,...",
        help="methods trained over more seeds (default baseline=10,pkl=10: the paper's method against "
        "the baseline detects 1.5 Dice points in every region); 'none' for no extra seeds",
    )
    rf.add_argument(
        "--methods",
        default=None,
        help="comma-separated student methods (default all: baseline,control,kd,rkd,ckd,pkl,kdnet)",
    )

    asg = sub.add_parser(
        "assignments",
        help="write the student versions of the lessons' exercises",
        description="Write every lesson as a learner gets it, with nbgrader's own "
        "preprocessors: solutions replaced by stubs, hidden tests removed, "
        "outputs cleared; plus a README listing the exercises.",
    )
    _lesson_folder_options(asg, "folder")

    co = sub.add_parser(
        "course",
        help="write an nbgrader course of the lessons (source/, nbgrader_config.py, the workflow)",
        description="Write an nbgrader course folder: one assignment per lesson in source/ (the instructor "
        "versions), an nbgrader_config.py whose cell timeout suits lessons that train and which grades "
        "with the course's stored runs, and a README with nbgrader's workflow and the exercises' points.",
    )
    _lesson_folder_options(co, "course folder")
    co.add_argument("--only", nargs="+", metavar="NN", help="only these lessons, e.g. --only 00 03")
    co.add_argument("--profile", default="quick", choices=list(PROFILES), help="profile submissions are graded in")
    co.add_argument("--course-id", default="pkd-lessons", help="nbgrader's course id (default pkd-lessons)")

    bm = sub.add_parser(
        "benchmark",
        help="measure training speed and what the input pipeline costs",
        description="For each method: (a) the model step on a batch already on the device, "
        "(b) the full training step through the input pipeline; slices/s of each, "
        "the ratio (b)/(a), the overhead of distillation over the baseline and the "
        "peak memory. Writes JSON so that versions can be compared.",
    )
    bm.add_argument("--out", default="benchmark.json", help="JSON file to write (default benchmark.json)")
    bm.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=["teacher", "baseline", "pkl"],
        help="methods to time (default teacher baseline pkl)",
    )
    bm.add_argument(
        "--profile",
        choices=list(PRESETS),
        default="default",
        help="default (2D slices) or faithful (3D 80^3 crops, batch 4: the reference code's experiment)",
    )
    bm.add_argument("--data", default=None, help="data folder (default: brain phantoms made in a temporary folder)")
    bm.add_argument("--cases", type=_positive, default=4, help="cases to load (default 4)")
    bm.add_argument(
        "--voxel-mm",
        type=float,
        default=None,
        help="voxel size of the generated phantoms (default: 1 mm for faithful, the phantoms' own otherwise)",
    )
    bm.add_argument(
        "--crop", type=_crop, default=None, help="3D crop size, one size or three (default: the profile's, 80)"
    )
    bm.add_argument(
        "--size",
        type=_positive,
        default=None,
        help="resample slices to SIZE x SIZE (default: the data's own, 80x104 for the phantom)",
    )
    bm.add_argument("--steps", type=_positive, default=10, help="timed steps per measurement (default 10)")
    bm.add_argument("--warmup", type=int, default=2, help="untimed steps before each measurement (default 2)")
    bm.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="measurements of each kind, alternating; the fastest counts (default 3)",
    )
    _compute_options(bm, batch="slices (2D) or crops (3D) per step", defaults=defaults)
    bm.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _compute_options(parser: argparse.ArgumentParser, batch: str, defaults: TrainConfig = DEFAULT) -> None:
    """What a step computes on and how (shared by train and benchmark): batch, widths, device, precision,
    and the options that change only how fast it runs. ``batch`` describes one batch in the help."""
    parser.add_argument(
        "--batch-size", type=_positive, default=defaults.batch_size, help=f"{batch} (default {defaults.batch_size})"
    )
    parser.add_argument(
        "--widths",
        type=_widths,
        default=defaults.widths,
        help=f"channels of the four U-Net stages (default {','.join(map(str, defaults.widths))})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument(
        "--amp",
        choices=list(AMP_CHOICES),
        default=defaults.amp,
        help=f"mixed precision (default {defaults.amp}; auto: bf16/fp16 on GPUs, off on CPU)",
    )
    parser.add_argument(
        "--placement",
        choices=list(PLACEMENTS),
        default=defaults.placement,
        help="training slices on the GPU (device), in pinned host memory with asynchronous copies "
        "(pinned), or auto: on the GPU when they fit",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (faster steps after a compilation of a minute or more)",
    )
    parser.add_argument("--no-channels-last", action="store_true", help="keep the default memory layout on CUDA")


def _check(folder: str, require_labels: bool) -> int:
    from pkd_lessons.data import find_cases, load_case

    cases = find_cases(folder, require_labels=require_labels)
    print(f"{folder}: {len(cases)} case(s), layout {cases[0].layout}, modalities {', '.join(cases[0].modalities)}")
    for case in cases:
        v = load_case(case)
        counts = (
            ""
            if v.truth is None
            else " ".join(f"{name}={int(r.sum())}" for name, r in zip(v.convention.region_names, v.regions()))
        )
        spacing = "x".join(f"{s:g}" for s in v.spacing)
        clean = " (clean truth)" if case.truth is not None else ""
        print(f"  {case.case_id}: {'x'.join(map(str, v.shape))} @ {spacing} mm  {counts}{clean}")
    print("all cases readable and consistent")
    return 0


def _train(args) -> int:
    from pkd_lessons.atomic import write_text_or_rescue
    from pkd_lessons.data import find_cases, load_cases, split_cases
    from pkd_lessons.training.config import TrainConfig
    from pkd_lessons.training.device import pick_device
    from pkd_lessons.training.distributed import close_ranks, init_ranks
    from pkd_lessons.training.trainer import train

    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
    # under torchrun: join the other processes; each takes its own GPU (cuda:LOCAL_RANK)
    ranks, args.device = init_ranks(args.device)
    pick_device(args.device)  # an unusable device is refused before the data are read
    cases = find_cases(args.data)
    train_cases, _ = split_cases(cases, (1 - args.test_fraction, args.test_fraction), seed=args.split_seed)
    volumes = load_cases(train_cases, progress=not args.quiet and ranks.is_main)
    cfg = TrainConfig.preset(
        args.profile,
        method=args.method,
        modalities=volumes[0].modalities,
        modality=args.modality or student_modality(volumes[0].modalities),
        num_classes=volumes[0].convention.num_classes,
        **config_settings(args, skip=("method",)),  # the rest as given (None: the method decides)
    )
    checkpoint = Path(args.out) / "checkpoint.pt"
    started = time.time()
    try:
        trainer = train(
            cfg,
            volumes,
            args.teacher,
            out=args.out,
            device=args.device,
            progress=not args.quiet,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            ranks=ranks,
            until=args.stop_at,
        )
    except KeyboardInterrupt:
        # Only a checkpoint of this run is worth resuming: one written by this command, or resumed from.
        if checkpoint.is_file() and (args.resume or checkpoint.stat().st_mtime >= started):
            from pkd_lessons.training.checkpoint import load_checkpoint

            step = load_checkpoint(checkpoint)["step"]
            print(
                f"pkd-lessons: interrupted; {checkpoint} holds step {step} of {args.steps}: run the same command "
                "with --resume to continue from there",
                file=sys.stderr,
            )
        else:
            print(
                f"pkd-lessons: interrupted before this run's first checkpoint (every {args.checkpoint_every} "
                "steps); nothing of it was saved",
                file=sys.stderr,
            )
        return 130
    close_ranks(ranks)
    if not ranks.is_main:
        return 0
    out = Path(args.out)
    write_text_or_rescue(
        out / "history.json",
        json.dumps(
            {
                "config": cfg.to_dict(),
                "history": dict(trainer.history),
                "samples_per_second": trainer.samples_per_second,
                "device": str(trainer.device),
                "precision": trainer.precision.name,
                # the effective batch is the config's batch_size, split among the processes
                "processes": ranks.world,
                "batch_per_process": cfg.batch_size // ranks.world,
            }
        ),
        "training history",
    )
    first, last = trainer.history["loss"][0], trainer.history["loss"][-1]
    across = f" over {ranks.world} processes" if ranks.distributed else ""
    print(
        f"trained {args.method} for {trainer.step} steps (batch {cfg.batch_size}): loss {first:.3f} -> {last:.3f}; "
        f"{trainer.samples_per_second:.0f} samples/s on {trainer.device}{across}; {out / 'checkpoint.pt'}"
    )
    return 0


def _evaluate(args) -> int:
    from pkd_lessons.atomic import check_writable_file, write_text_or_rescue
    from pkd_lessons.data import find_cases, load_cases
    from pkd_lessons.evaluation.prediction import evaluate, mean_dice
    from pkd_lessons.training.device import pick_device
    from pkd_lessons.training.trainer import load_model

    if bool(args.checkpoints) == bool(args.predictions):
        raise ValueError("evaluate takes checkpoint files or --predictions FOLDER, one of the two")
    if args.lesion_wise and not args.predictions:
        raise ValueError("--lesion-wise scores a folder of segmentations: write one with predict, then --predictions")
    if args.predictions and args.no_brain_mask:
        raise ValueError("--no-brain-mask is predict's: a folder of segmentations is scored as it was written")
    check_writable_file(args.out, "metrics file")  # before any work, not after it
    if args.predictions:
        return _score_predictions(args)
    device = pick_device(args.device)
    cases = find_cases(args.data)
    cache: dict = {}
    records = []
    loaded = [(path, *load_model(path, device)) for path in args.checkpoints]  # every checkpoint checked first
    for path, _, cfg, _ in loaded:
        if tuple(cfg.modalities) != tuple(cases[0].modalities):
            raise DataError(
                f"{path}: the network was trained on {', '.join(cfg.modalities)}, but {args.data} holds "
                f"{', '.join(cases[0].modalities)}; evaluate it on data of its own kind"
            )
    for path, model, cfg, state in loaded:
        trained = set(state.get("cases", []))
        held_out = [c for c in cases if c.case_id not in trained]
        if not held_out:
            raise ValueError(f"{path}: every case of {args.data} was used to train it; nothing to evaluate")
        for c in held_out:
            if c.case_id not in cache:
                cache[c.case_id] = load_cases([c], progress=False)[0]
        record = evaluate(
            model,
            cfg,
            [cache[c.case_id] for c in held_out],
            device,
            progress=not args.quiet,
            brain_mask=not args.no_brain_mask,
            name=Path(path).parent.name,
        )
        record["checkpoint"] = str(path)
        records.append(record)
        scores = ", ".join(f"{k} {v:.3f}" for k, v in mean_dice(record).items())
        print(f"{path}: {len(held_out)} held-out case(s), mean Dice {scores}")
    write_text_or_rescue(args.out, json.dumps(records, indent=1), "metrics")
    print(f"metrics: {args.out}")
    return 0


def _score_predictions(args) -> int:
    from pkd_lessons.atomic import write_text_or_rescue
    from pkd_lessons.evaluation.lesion_wise import lesion_wise_summary
    from pkd_lessons.evaluation.prediction import mean_dice
    from pkd_lessons.evaluation.segmentation_files import score_folder

    record = score_folder(args.predictions, args.data, progress=not args.quiet, lesion_wise=args.lesion_wise)
    scores = ", ".join(f"{k} {v:.3f}" for k, v in mean_dice(record).items())
    left_out = record["trained_on_left_out"]
    note = f" ({len(left_out)} case(s) the network trained on left out)" if left_out else ""
    print(f"{args.predictions}: {len(record['cases'])} case(s){note}, mean Dice {scores}")
    if args.lesion_wise:
        rows = lesion_wise_summary({"": record})
        means = ", ".join(f"{r['region']} {r['lesion_dice']:.3f} / {r['lesion_hd95']:.1f} mm" for r in rows)
        print(f"lesion-wise mean Dice / HD95: {means}")
    write_text_or_rescue(args.out, json.dumps([record], indent=1), "metrics")
    print(f"metrics: {args.out}")
    return 0


def _predict(args) -> int:
    from pkd_lessons.evaluation.segmentation_files import MANIFEST, predict_folder

    written = predict_folder(
        args.checkpoint,
        args.data,
        args.out,
        device=args.device,
        brain_mask=not args.no_brain_mask,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(f"wrote {len(written)} segmentation(s) to {args.out} (e.g. {written[0].name}); {Path(args.out) / MANIFEST}")
    return 0


def _compare(args) -> int:
    from pkd_lessons.evaluation.tables import save_results, summarize, summary_table

    records = []
    for path in args.metrics:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: not a metrics JSON file ({err})") from err
        records += check_records(data, path)
    baseline = args.baseline if any(r["method"] == args.baseline for r in records) else None
    try:
        rows = summarize(records, baseline=baseline, metric=args.metric)
    except ValueError as err:
        raise DataError(f"{', '.join(args.metrics)}: {err}") from err
    scale = 100.0 if args.metric == "dice" else 1.0
    paths = save_results(rows, args.out, scale=scale, baseline=args.baseline)
    print(summary_table(rows, scale=scale, baseline=args.baseline))
    if baseline is not None and len({r["method"] for r in rows}) > 1:
        from pkd_lessons.evaluation.statistics import compare, verdict_lines

        unit = "Dice points" if args.metric == "dice" else "mm"
        found = compare(records, reference=baseline, metric=args.metric)
        print(verdict_lines(found, reference=baseline, scale=scale, unit=unit))
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


RECORD_KEYS = ("method", "seed", "cases")


def check_records(data, path: str) -> list[dict]:
    """The metrics records of one file written by ``evaluate`` (a record or a list of them).

    Raises:
        DataError: naming the file, when it holds anything else.
    """
    records = data if isinstance(data, list) else [data]
    if not records:
        raise DataError(f"{path}: holds no metrics records (an empty list)")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or any(k not in r for k in RECORD_KEYS) or not isinstance(r["cases"], dict):
            raise DataError(
                f"{path}: entry {i} is not a metrics record from 'pkd-lessons evaluate' (expected an "
                f"object with {', '.join(RECORD_KEYS)}; got {json.dumps(r)[:60]})"
            )
    return records


def _benchmark(args) -> int:
    from pkd_lessons.training.benchmark import benchmark, benchmark_table, save_report

    report = benchmark(
        args.methods,
        args.data,
        profile=args.profile,
        cases=args.cases,
        voxel_mm=args.voxel_mm,
        crop=args.crop,
        size=args.size,
        batch_size=args.batch_size,
        widths=args.widths,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        device=args.device,
        amp=args.amp,
        placement=args.placement,
        compile=args.compile,
        channels_last=not args.no_channels_last,
        progress=not args.quiet,
    )
    print(benchmark_table(report))
    print(f"written: {save_report(report, args.out)}")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, read; for ``train`` or ``benchmark`` with ``--profile P`` the preset's values
    are the options' defaults (options given on the line still win)."""
    args = build_parser().parse_args(argv)
    if args.command in ("train", "benchmark") and args.profile != "default":
        args = build_parser(TrainConfig.preset(args.profile)).parse_args(argv)
    return args


def _lesson_folder_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out``, ``--notebooks`` and ``--overwrite`` of a command that writes a folder of lessons."""
    parser.add_argument("--out", required=True, help=f"{what} to write (must not exist unless --overwrite)")
    parser.add_argument(
        "--notebooks", default=None, help="folder of the lesson notebooks (default ./notebooks, else the package's)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the folder")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        if args.command == "phantoms":
            from pkd_lessons.phantoms import make_phantoms

            out = make_phantoms(
                args.kind,
                args.out,
                args.cases,
                args.seed,
                voxel_mm=args.voxel_mm,
                overwrite=args.overwrite,
                progress=not args.quiet,
            )
            print(f"wrote {args.cases} {args.kind} case(s) to {out}")
            return 0
        if args.command == "check":
            return _check(args.folder, not args.no_labels)
        if args.command == "data":
            from pkd_lessons.realdata.commands import data_main

            return data_main(args.action, args.dataset, args.options)
        if args.command == "train":
            return _train(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "benchmark":
            return _benchmark(args)
        if args.command == "assignments":
            from pkd_lessons.lessons.assignments import write_assignments

            written = write_assignments(args.out, args.notebooks, args.overwrite)
            print(f"wrote {len(written)} student notebook(s) to {args.out}")
            return 0
        if args.command == "course":
            from pkd_lessons.lessons.course import write_course

            written = write_course(args.out, args.notebooks, args.only, args.course_id, args.profile, args.overwrite)
            print(f"wrote an nbgrader course of {len(written)} lesson(s) to {args.out}; next: {args.out}/README.md")
            return 0
        if args.command == "pretrain":
            from pkd_lessons.lessons.pretrained import pretrain

            for path in pretrain(args.profile, tuple(args.datasets), args.data, args.runs, args.out):
                print(f"written: {path}")
            return 0
        if args.command == "reference" and args.rescore:
            from pkd_lessons.lessons.reference import REFERENCE_FILE, load_reference
            from pkd_lessons.lessons.rescore import rescore_reference

            given = [
                f"--{k.replace('_', '-')}" for k in ("seeds", "seeds_of", "methods") if getattr(args, k) is not None
            ]
            if given:
                raise SystemExit(f"reference --rescore scores the stored runs as they are; drop {', '.join(given)}")
            stored = load_reference(args.out or REFERENCE_FILE)
            if stored is not None and stored["provenance"]["profile"] != args.profile:
                raise SystemExit(
                    f"{args.out or REFERENCE_FILE} holds runs of profile {stored['provenance']['profile']!r}, "
                    f"not {args.profile!r}"
                )
            print(f"written: {rescore_reference(args.out or REFERENCE_FILE, args.data)}")
            return 0
        if args.command == "reference":
            from pkd_lessons.lessons.reference import REFERENCE_FILE, build_reference

            methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None
            out = build_reference(
                args.out or REFERENCE_FILE,
                args.profile,
                args.data,
                **({"methods": methods} if methods else {}),
                seeds_of=args.seeds_of,
                seeds=args.seeds,
            )
            print(f"written: {out}")
            return 0
        if args.command == "lessons":
            from pkd_lessons.lessons.runner import run_lessons

            summary, runs = run_lessons(
                args.out, args.profile, args.notebooks, args.only, args.data, runs_dir=args.runs
            )
            print(f"summary: {summary}")
            failed = [r.name for r in runs if not r.ok]
            if failed:
                print(f"pkd-lessons: error: lessons failed: {', '.join(failed)}", file=sys.stderr)
                return 1
            return 0
    except (DataError, ValueError, FileExistsError, FileNotFoundError, TrainingError, ImportError) as err:
        print(f"pkd-lessons: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a disk that is full or read-only: the message names the file
        print(f"pkd-lessons: error: {err}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
