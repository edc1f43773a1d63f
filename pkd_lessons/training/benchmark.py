"""How fast the trainer runs, and how much of that the input pipeline costs.

For each method it measures, in slices per second:

(a) **model step**: forward, losses, backward and optimiser step on one batch that is already on
    the device, repeated: what the network and its losses alone allow;
(b) **training step**: :meth:`Trainer.train_step` as training runs it: drawing the batch from the
    placed slices, augmenting it on the device, the learning-rate schedule and the loss bookkeeping.

The ratio (b)/(a) is the share of the achievable speed the pipeline keeps (1.0: the pipeline is
free). Because (a) and (b) are each timed with their own noise, their ratio moves by a few per cent
on a busy machine even when the pipeline costs nothing; the pipeline is therefore also timed on its
own, (c): drawing and augmenting a batch without the model. Its share of a step, (c)/((a)+(c)), is
the direct measure of what the pipeline costs. For distilled students the overhead over the
baseline student is reported too. Timings synchronise the device before reading the clock, follow
warm-up steps (which also absorb ``torch.compile``'s tracing when it is on), and are repeated
alternately, (a), (b), (c), (a), (b), (c)..., keeping the fastest of each, as ``timeit`` does:
other load on the machine only ever slows a run down, so the minimum is the least disturbed
estimate.
"""

from __future__ import annotations

import gc
import json
import platform
import resource
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Resize
from tqdm.auto import tqdm

from pkd_lessons.atomic import atomic_file
from pkd_lessons.data import find_cases, load_cases
from pkd_lessons.data.layouts import student_modality
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.markdown import markdown_table
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.device import describe_device, pick_device, synchronize
from pkd_lessons.training.trainer import Trainer, build_model, freeze


def resize_volume(volume: CaseVolume, size: int) -> CaseVolume:
    """The volume resampled in-plane to ``size`` x ``size`` (MONAI's ``Resize``: linear images, nearest
    labels and mask; the slice count is kept)."""
    smooth, nearest = Resize((size, size, -1), mode="trilinear"), Resize((size, size, -1), mode="nearest")

    def classes(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(nearest(a[None].astype(np.float32)))[0].astype(np.uint8)

    image = np.asarray(smooth(volume.image), dtype=np.float32)
    mask = np.asarray(nearest(volume.mask[None].astype(np.float32)))[0] > 0.5
    return CaseVolume(
        volume.case_id,
        volume.modalities,
        image,
        classes(volume.label),
        classes(volume.truth),
        mask,
        volume.affine,
        volume.convention,
    )


def _timed(step, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` calls (the device synchronised around the timing)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def _peak_memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"peak_device_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    # ru_maxrss is in KiB on Linux: the process's peak, including everything before this method.
    return {"peak_host_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def benchmark(
    methods: Sequence[str] = ("teacher", "baseline", "pkl"),
    data: str | Path | None = None,
    *,
    cases: int = 4,
    size: int | None = None,
    batch_size: int = 16,
    widths: Sequence[int] = (16, 32, 64, 128),
    steps: int = 10,
    warmup: int = 2,
    repeats: int = 3,
    device: str = "auto",
    amp: str = "auto",
    placement: str = "auto",
    compile: bool = False,
    channels_last: bool = True,
    intensity: float = 0.1,
    affine: float = 10.0,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Measure the model step and the training step of each method.

    Args:
        methods: methods to time (distilled ones use a frozen, untrained teacher: speed does not
            depend on the weights; the teacher's outputs are cached as in training).
        data: a data folder; None generates ``cases`` brain phantoms in a temporary folder.
        cases: how many cases to use.
        size: resample slices in-plane to ``size`` x ``size`` (None: the data's own size).
        batch_size: slices per step.
        widths: U-Net widths.
        steps: timed steps per measurement.
        warmup: untimed steps before each measurement.
        repeats: measurements of each of (a), (b) and (c), alternating; the fastest counts.
        device: ``"auto"`` or a device name.
        amp: precision request (see :func:`~pkd_lessons.training.precision.choose_precision`).
        placement: where the slices live (see :mod:`pkd_lessons.training.inputs`).
        compile: ``torch.compile`` the networks.
        channels_last: channels-last layout on CUDA.
        intensity: intensity augmentation of the timed training step.
        affine: affine augmentation (degrees) of the timed training step.
        seed: seed.
        progress: progress bar over the methods.

    Returns:
        A JSON-ready dict: the environment, the sizes and, per method, slices/s of (a) and (b), their
        ratio, the pipeline's own share of a step, the overhead over the baseline, the placement and the peak memory.
    """
    dev = pick_device(device)
    with tempfile.TemporaryDirectory(prefix="pkd-benchmark-") as tmp:
        if data is None:
            from pkd_lessons.phantoms import make_phantoms

            data = make_phantoms("brain", Path(tmp) / "brain", cases=cases, seed=seed, progress=False)
        volumes = load_cases(find_cases(data)[:cases], progress=False)
    if size is not None:
        volumes = [resize_volume(v, size) for v in volumes]
    base = {
        "modalities": volumes[0].modalities,
        "num_classes": volumes[0].convention.num_classes,
        "widths": tuple(widths),
        "batch_size": batch_size,
        "steps": 2 * repeats * (warmup + steps) + 2,
        "amp": amp,
        "placement": placement,
        "compile": compile,
        "channels_last": channels_last,
        "seed": seed,
        "intensity": intensity,
        "affine": affine,
    }
    base["modality"] = student_modality(volumes[0].modalities)
    teacher = (
        freeze(build_model(TrainConfig(method="teacher", **base))) if set(methods) - {"teacher", "baseline"} else None
    )
    results, sizes = {}, {}
    for method in tqdm(methods, desc="benchmark", unit="method", disable=not progress):
        cfg = TrainConfig(method=method, **base)
        trainer = fixed = None  # free the previous method's networks and data before placing the next
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        trainer = Trainer(cfg, volumes, teacher if cfg.needs_teacher else None, device=dev, progress=False)
        fixed = trainer.next_batch()
        model_s = train_s = pipeline_s = float("inf")
        for _ in range(repeats):
            model_s = min(model_s, _timed(partial(trainer.optimise, fixed), dev, warmup, steps))
            train_s = min(train_s, _timed(trainer.train_step, dev, warmup, steps))
            pipeline_s = min(pipeline_s, _timed(trainer.next_batch, dev, warmup, steps))
        trainer.history  # noqa: B018 (reads the losses back, so that they were really computed)
        results[method] = {
            "model_step_slices_per_s": batch_size / model_s,
            "train_step_slices_per_s": batch_size / train_s,
            "ratio": model_s / train_s,
            "pipeline_share": pipeline_s / (model_s + pipeline_s),
            "placement": trainer.feed.placement,
            "resident_data_mb": trainer.feed.nbytes / 2**20,
            **_peak_memory(dev),
        }
        sizes = {
            "slice": list(trainer.bank.images.shape[2:]),
            "slices": len(trainer.bank),
            "dtype": trainer.precision.name,
            "channels_last": trainer.channels_last,
        }
    if "baseline" in results:
        ref = results["baseline"]["train_step_slices_per_s"]
        for method, r in results.items():
            if method not in ("teacher", "baseline"):
                r["overhead_vs_baseline"] = ref / r["train_step_slices_per_s"] - 1
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": describe_device(dev),
        "device_type": dev.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cases": len(volumes),
        "batch_size": batch_size,
        "widths": list(widths),
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "compile": compile,
        "augment": {"flip": True, "intensity": intensity, "affine": affine},
        **sizes,
        "results": results,
    }


def benchmark_table(report: dict) -> str:
    """The benchmark as a Markdown table with a header line naming the device and sizes."""
    lines = [
        f"{report['device']}, {report['dtype']}, slices {report['slice'][0]}x{report['slice'][1]}, "
        f"batch {report['batch_size']}, widths {'/'.join(map(str, report['widths']))}, "
        f"channels-last {'on' if report['channels_last'] else 'off'}, "
        f"compile {'on' if report['compile'] else 'off'}, torch {report['torch']}, {report['date'][:10]}",
        "",
    ]
    head = [
        "method",
        "(a) model step, slices/s",
        "(b) training step, slices/s",
        "(b)/(a)",
        "(c) pipeline share",
        "vs baseline",
        "data on",
        "peak memory",
    ]
    rows = []
    for method, r in report["results"].items():
        memory = r.get("peak_device_memory_mb")
        memory = f"{memory:.0f} MB (device)" if memory is not None else f"{r['peak_host_memory_mb']:.0f} MB (process)"
        overhead = f"{100 * r['overhead_vs_baseline']:+.0f} %" if "overhead_vs_baseline" in r else "-"
        share = f"{100 * r['pipeline_share']:.0f} %" if "pipeline_share" in r else "-"  # reports before (c) existed
        rows.append(
            [
                method,
                f"{r['model_step_slices_per_s']:.1f}",
                f"{r['train_step_slices_per_s']:.1f}",
                f"{r['ratio']:.2f}",
                share,
                overhead,
                r["placement"],
                memory,
            ]
        )
    return "\n".join(lines) + "\n" + markdown_table(head, rows)


def save_report(report: dict, path: str | Path) -> Path:
    """Write the report as JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return Path(path)
