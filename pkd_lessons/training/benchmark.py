"""How fast the trainer runs, and how much of that the input pipeline costs.

For each method it measures, in slices per second (2D) or crops per second (3D, ``profile="faithful"``):

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
from pkd_lessons.training.config import PRESETS, TrainConfig
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


#: The 2D benchmark's augmentation (the lessons' training step); the faithful profile has none.
AUGMENT_2D = {"intensity": 0.1, "affine": 10.0}


def benchmark(
    methods: Sequence[str] = ("teacher", "baseline", "pkl"),
    data: str | Path | None = None,
    *,
    profile: str = "default",
    cases: int = 4,
    voxel_mm: float | None = None,
    size: int | None = None,
    batch_size: int | None = None,
    widths: Sequence[int] | None = None,
    crop: Sequence[int] | None = None,
    steps: int = 10,
    warmup: int = 2,
    repeats: int = 3,
    device: str = "auto",
    amp: str = "auto",
    placement: str = "auto",
    compile: bool = False,
    channels_last: bool = True,
    intensity: float | None = None,
    affine: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Measure the model step and the training step of each method.

    Args:
        methods: methods to time (distilled ones use a frozen, untrained teacher: speed does not
            depend on the weights; the teacher's outputs are cached as in training).
        data: a data folder; None generates ``cases`` brain phantoms in a temporary folder.
        profile: ``"default"`` (2D slices) or ``"faithful"`` (3D crops, the reference code's sizes:
            :data:`~pkd_lessons.training.config.PRESETS`); the arguments below replace its values.
        cases: how many cases to use.
        voxel_mm: voxel size of the generated phantoms (None: 1 mm for ``faithful``, the template's
            own grid; the phantoms' default otherwise).
        size: 2D: resample slices in-plane to ``size`` x ``size`` (None: the data's own size).
        batch_size: slices or crops per step (None: the profile's, 16 for ``default``).
        widths: U-Net widths (None: the profile's).
        crop: 3D crop size (None: the profile's, 80^3 for ``faithful``).
        steps: timed steps per measurement.
        warmup: untimed steps before each measurement.
        repeats: measurements of each of (a), (b) and (c), alternating; the fastest counts.
        device: ``"auto"`` or a device name.
        amp: precision request (see :func:`~pkd_lessons.training.precision.choose_precision`).
        placement: where the slices live (see :mod:`pkd_lessons.training.inputs`).
        compile: ``torch.compile`` the networks.
        channels_last: channels-last layout on CUDA.
        intensity: intensity augmentation of the timed training step (None: 0.1 in 2D, the profile's in 3D).
        affine: affine augmentation (degrees) of the timed training step (None: 10 in 2D, 0 in 3D).
        seed: seed.
        progress: progress bar over the methods.

    Returns:
        A JSON-ready dict: the environment, the sizes and, per method, slices/s (crops/s in 3D: the
        report's ``unit``) of (a) and (b), their ratio, the pipeline's own share of a step, the
        overhead over the baseline, the placement and the peak memory.

    Raises:
        ValueError: an unknown profile, or ``size`` with a 3D profile.
    """
    if profile not in PRESETS:
        raise ValueError(f"profile must be one of {', '.join(PRESETS)}, got {profile!r}")
    settings = {**(AUGMENT_2D if profile == "default" else {}), **PRESETS[profile]}
    given = {"batch_size": batch_size, "widths": widths, "crop": crop, "intensity": intensity, "affine": affine}
    settings.update({k: v for k, v in given.items() if v is not None})
    three_d = settings.get("spatial_dims", 2) == 3
    if three_d and size is not None:
        raise ValueError("size resamples 2D slices; a 3D profile times crops of the data's own grid")
    if not three_d and crop is not None:
        raise ValueError("crop is the 3D crop size; a 2D profile times slices (see size)")
    if three_d and voxel_mm is None:
        voxel_mm = 1.0
    dev = pick_device(device)
    with tempfile.TemporaryDirectory(prefix="pkd-benchmark-") as tmp:
        if data is None:
            from pkd_lessons.phantoms import make_phantoms

            data = make_phantoms(
                "brain", Path(tmp) / "brain", cases=cases, seed=seed, voxel_mm=voxel_mm, progress=False
            )
        volumes = load_cases(find_cases(data)[:cases], progress=False)
    if size is not None:
        volumes = [resize_volume(v, size) for v in volumes]
    unit = "crop" if three_d else "slice"
    batch_size = settings.setdefault("batch_size", TrainConfig.batch_size)
    base = {
        **settings,
        "modalities": volumes[0].modalities,
        "num_classes": volumes[0].convention.num_classes,
        "steps": 2 * repeats * (warmup + steps) + 2,
        "amp": amp,
        "placement": placement,
        "compile": compile,
        "channels_last": channels_last,
        "seed": seed,
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
            f"model_step_{unit}s_per_s": batch_size / model_s,
            f"train_step_{unit}s_per_s": batch_size / train_s,
            "ratio": model_s / train_s,
            "pipeline_share": pipeline_s / (model_s + pipeline_s),
            "placement": trainer.feed.placement,
            "resident_data_mb": trainer.feed.nbytes / 2**20,
            **_peak_memory(dev),
        }
        where = (
            {"crop": list(cfg.crop), "volume": list(volumes[0].shape)}
            if three_d
            else {"slice": list(trainer.bank.images.shape[2:]), "slices": len(trainer.bank)}
        )
        sizes = {**where, "dtype": trainer.precision.name, "channels_last": trainer.channels_last}
    if "baseline" in results:
        ref = results["baseline"][f"train_step_{unit}s_per_s"]
        for method, r in results.items():
            if method not in ("teacher", "baseline"):
                r["overhead_vs_baseline"] = ref / r[f"train_step_{unit}s_per_s"] - 1
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": describe_device(dev),
        "device_type": dev.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "profile": profile,
        "unit": unit,
        "cases": len(volumes),
        "batch_size": batch_size,
        "widths": list(base["widths"]),
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "compile": compile,
        "augment": {k: base.get(k, getattr(TrainConfig, k)) for k in ("flip", "intensity", "affine")},
        **sizes,
        "results": results,
    }


def benchmark_table(report: dict) -> str:
    """The benchmark as a Markdown table with a header line naming the device and sizes.

    Reports of 2D runs count slices, those of 3D runs (``unit`` ``"crop"``) crops; reports written
    before the unit was recorded are 2D.
    """
    unit = report.get("unit", "slice")
    sizes = "x".join(map(str, report[unit]))
    lines = [
        f"{report['device']}, {report['dtype']}, {unit}s {sizes}, "
        f"batch {report['batch_size']}, widths {'/'.join(map(str, report['widths']))}, "
        f"channels-last {'on' if report['channels_last'] else 'off'}, "
        f"compile {'on' if report['compile'] else 'off'}, torch {report['torch']}, {report['date'][:10]}",
        "",
    ]
    head = [
        "method",
        f"(a) model step, {unit}s/s",
        f"(b) training step, {unit}s/s",
        "training step, s",
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
        train = r[f"train_step_{unit}s_per_s"]
        rows.append(
            [
                method,
                f"{r[f'model_step_{unit}s_per_s']:.3g}",
                f"{train:.3g}",
                f"{report['batch_size'] / train:.3g}",
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
