"""What the code does, as a number: the behaviour fingerprint that ties a stored run to its code.

A stored run may be reused only if the code would make it again. The commit says which code made
it, but every commit changes the commit, including a refactor that changes no number. So a run also
carries a fingerprint of the code's **behaviour** for runs of its kind: a probe run with the run's
own settings (method, losses, weights, temperature, network, optimiser, schedule, sampler,
augmentation, label source) shrunk to toy sizes (tiny widths, 3 steps, batch 2) trains on a fixed
synthetic batch from fixed seeds, and its losses at every step, its predictions' Dice and HD95 and
its output on a fixed input are rounded to 5 significant digits and hashed. A changed loss, network,
sampler, schedule, prediction or metric changes the fingerprint; renaming or moving code does not.
The rounding keeps the fingerprint the same across machines whose last bits differ.

Example::

    from pkd_lessons.training.behaviour import behaviour_fingerprint
    behaviour_fingerprint(TrainConfig(method="pkl"), volumes[0].convention)   # e.g. '3f1c0a9be2d4...'
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace

import numpy as np

from pkd_lessons.data.labels import LabelConvention
from pkd_lessons.data.volumes import CaseVolume
from pkd_lessons.training.config import TrainConfig

#: Significant digits kept of every probed number.
DIGITS = 5
#: Steps of the probe run: enough for the optimiser's state and the schedule to act.
PROBE_STEPS = 3


def probe_config(cfg: TrainConfig) -> TrainConfig:
    """The run's settings at toy sizes: what the probe trains.

    Sizes, step counts, the seed and the settings of speed go; every setting that changes what is
    computed stays.

    Args:
        cfg: a run's settings.

    Returns:
        The probe's settings: widths 4, 8, ... (as many stages as ``cfg``), 3 steps, batch 2, 16-voxel
        crops or windows, no validation, seed 0, CPU-friendly fp32 without compilation.
    """
    return replace(
        cfg,
        widths=tuple(4 * 2**i for i in range(len(cfg.widths))),
        steps=PROBE_STEPS,
        batch_size=2,
        crop=(16, 16, 16),
        slice_crop=None if cfg.slice_crop is None else (16, 16),
        validate_every=0,
        seed=0,
        amp="off",
        placement="auto",
        channels_last=False,
        compile=False,
    )


def probe_volumes(cfg: TrainConfig, convention: LabelConvention, cases: int = 2) -> list[CaseVolume]:
    """Synthetic cases for the probe: fixed random images and class maps in the run's modalities.

    Args:
        cfg: the probe's settings (:func:`probe_config`).
        convention: the label convention of the run's data.
        cases: how many.

    Returns:
        ``cases`` volumes of 20 x 20 x 20 voxels (2 mm) whose brain is a 12 x 14 x 20 block off the
        centre (zero outside, as a skull-stripped image), so that where windows slide
        (:func:`~pkd_lessons.evaluation.prediction.brain_box`) shows in the fingerprint.
    """
    rng = np.random.default_rng(12345)
    shape = (20, 20, 20)
    brain = np.zeros(shape, bool)
    brain[2:14, 3:17, :] = True
    out = []
    for i in range(cases):
        classes = np.where(brain, rng.integers(0, cfg.num_classes, size=shape), 0).astype(np.uint8)
        truth = np.where(rng.random(shape) < 0.9, classes, 0).astype(np.uint8)
        out.append(
            CaseVolume(
                case_id=f"probe{i}",
                modalities=tuple(cfg.modalities),
                image=(rng.standard_normal((len(cfg.modalities), *shape)) * brain).astype(np.float32),
                label=classes,
                truth=truth,
                mask=brain,
                affine=np.diag([2.0, 2.0, 2.0, 1.0]),
                convention=convention,
            )
        )
    return out


def significant(value: float) -> float:
    """``value`` rounded to :data:`DIGITS` significant digits: the precision at which the fingerprint
    tells behaviours apart."""
    return float(f"{float(value):.{DIGITS}g}")


def probe(cfg: TrainConfig, convention: LabelConvention) -> dict:
    """Train the probe run and report what it computed (rounded).

    Args:
        cfg: a run's settings (shrunk here with :func:`probe_config`).
        convention: the label convention of the run's data.

    Returns:
        ``{"history": {term: [per step]}, "metrics": {case: {region: {dice, hd95}}}, "output": [...]}``.
    """
    import torch

    from pkd_lessons.evaluation.prediction import evaluate
    from pkd_lessons.training.trainer import Trainer, build_model

    small = probe_config(cfg)
    volumes = probe_volumes(small, convention)
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)  # one reduction order, whatever the machine
        try:
            torch.manual_seed(1)
            teacher = None
            if small.needs_teacher:
                teacher = build_model(replace(small, method="teacher"))
            trainer = Trainer(small, volumes, teacher, device="cpu", progress=False, teacher_id="probe")
            trainer.fit()
            model = trainer.model.eval()
            metrics = evaluate(model, small, volumes[:1], "cpu", progress=False)
            x = torch.from_numpy(volumes[1].image[[small.modalities.index(m) for m in small.input_modalities]])
            x = x[..., 10] if small.spatial_dims == 2 else x[..., 2:18, 2:18, 2:18]
            with torch.no_grad():
                logits = model(x[None])[0][0]  # (classes, ...)
        finally:
            torch.set_num_threads(threads)
    history = {k: [significant(v) for v in values] for k, values in sorted(trainer.history.items()) if values}
    scores = {
        case: {r: {k: significant(v) for k, v in sorted(m.items())} for r, m in sorted(regions.items())}
        for case, regions in metrics["cases"].items()
    }
    output = [significant(v) for v in logits.float().mean(dim=tuple(range(1, logits.ndim))).tolist()]
    return {"history": history, "metrics": scores, "output": output}


#: Fingerprints computed in this process, by probe settings and label convention.
_FOUND: dict[tuple[str, str], str] = {}
#: One probe at a time: it seeds torch's global generator and sets its thread count, so two
#: threads probing at once would draw each other's numbers and fingerprint the same run differently.
_PROBING = threading.Lock()


def behaviour_fingerprint(cfg: TrainConfig, convention: LabelConvention) -> str:
    """A short identifier of what the code computes for runs like ``cfg`` (see the module's text).

    Computed once per kind of run and process (about a second on a CPU).

    Args:
        cfg: a run's settings.
        convention: the label convention of the run's data.

    Returns:
        16 hexadecimal digits.
    """
    small = probe_config(cfg)
    key = (json.dumps(small.to_dict(), sort_keys=True), repr(convention))
    with _PROBING:
        if key not in _FOUND:
            found = probe(small, convention)
            _FOUND[key] = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]
        return _FOUND[key]
