"""What the lessons measure with: brain-mask evaluation, validation curves, slice windows, the
positive control, plateau readings, the annotation ceiling, profiles and the reference results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pkd_lessons.data import find_cases, load_cases
from pkd_lessons.errors import DataError
from pkd_lessons.evaluation.metrics import annotation_agreement, region_dice
from pkd_lessons.evaluation.prediction import evaluate, predict_volume
from pkd_lessons.evaluation.statistics import compare
from pkd_lessons.lessons.figures.training import pair_distances, plateau_reading, plot_curves, plot_training, retrieval
from pkd_lessons.lessons.profiles import PROFILES, get_profile
from pkd_lessons.lessons.reference import (
    REFERENCE_FILE,
    build_reference,
    load_reference,
    provenance_line,
    reference_gap_section,
    reference_records,
    reference_section,
)
from pkd_lessons.lessons.rescore import rescore_reference
from pkd_lessons.training.augment import random_crops
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.inputs import SliceBank
from pkd_lessons.training.trainer import Trainer, train

W = (4, 8, 16, 32)


@pytest.fixture(scope="module")
def volumes(brain_set):
    return load_cases(find_cases(brain_set), progress=False)


class Painter(torch.nn.Module):
    """A 'network' that predicts enhancing tumour everywhere (class 3)."""

    num_classes = 4

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 4, *x.shape[2:])
        logits[:, 3] = 1.0
        return logits, logits


def test_predictions_outside_the_brain_are_background(volumes):
    v = volumes[0]
    masked = predict_volume(Painter(), v, ("t1ce",))
    raw = predict_volume(Painter(), v, ("t1ce",), brain_mask=False)
    assert (raw == 3).all()
    assert (masked[~v.mask] == 0).all() and (masked[v.mask] == 3).all()
    cfg = TrainConfig(widths=W)
    on, off = (evaluate(Painter(), cfg, [v], progress=False, brain_mask=b) for b in (True, False))
    assert on["brain_mask"] and not off["brain_mask"]
    assert on["cases"][v.case_id]["ET"]["dice"] > off["cases"][v.case_id]["ET"]["dice"]


class FieldOfView(torch.nn.Module):
    """A 'network' whose answer depends on what it sees, as instance normalisation makes a real one:
    tumour (class 2) where the input is above its own mean over the field of view."""

    num_classes = 4

    def forward(self, x):
        above = (x[:, :1] > x[:, :1].mean(dim=(2, 3), keepdim=True)).float()
        logits = torch.cat([1 - above, torch.zeros_like(above), above, torch.zeros_like(above)], dim=1)
        return logits, logits


def test_a_run_trained_on_windows_predicts_by_windows(volumes):
    """Trained on slice windows, a run is scored by MONAI's sliding window of the same windows (as the
    reference code slides its training crop); a run trained on whole slices, on whole slices."""
    from monai.inferers import sliding_window_inference

    v = volumes[0]
    whole = predict_volume(FieldOfView(), v, ("t1ce",), brain_mask=False)
    windowed = predict_volume(FieldOfView(), v, ("t1ce",), brain_mask=False, window=(32, 32))
    assert (whole != windowed).mean() > 0.01, "the stand-in's answer must depend on its field of view"
    wanted = np.flatnonzero(v.mask.any(axis=(0, 1)))
    stack = torch.from_numpy(v.image[[v.modalities.index("t1ce")]][..., wanted]).float().permute(3, 0, 1, 2)
    expected = sliding_window_inference(stack, (32, 32), 32, lambda x: FieldOfView()(x)[0], 0.5, mode="gaussian")
    assert np.array_equal(windowed[..., wanted], expected.argmax(1).permute(1, 2, 0).numpy())
    for crop, reference in (((32, 32), windowed), (None, whole)):
        cfg = TrainConfig(widths=W, slice_crop=crop)
        scored = evaluate(FieldOfView(), cfg, [v], progress=False, brain_mask=False)["cases"][v.case_id]
        assert scored["WT"]["dice"] == pytest.approx(region_dice(reference, v.truth, v.convention)["WT"])


def test_validation_curve_goes_into_the_history(volumes):
    cfg = TrainConfig(method="baseline", widths=W, steps=6, batch_size=4, validate_every=3)
    trainer = Trainer(cfg, volumes[:2], device="cpu", progress=False, validation=volumes[2:3])
    history = trainer.fit()
    assert history["val_step"] == [3.0, 6.0]
    for region in ("WT", "TC", "ET"):
        assert len(history[f"val_{region}"]) == 2 and all(0 <= d <= 1 for d in history[f"val_{region}"])
    with pytest.raises(ValueError, match="validation cases must not be training cases"):
        Trainer(cfg, volumes[:2], device="cpu", progress=False, validation=volumes[1:2])


def test_positive_control_learns_from_the_truth(volumes):
    label = SliceBank.from_volumes(volumes[:1])
    truth = SliceBank.from_volumes(volumes[:1], target="truth")
    assert torch.equal(label.images, truth.images) and not torch.equal(label.labels, truth.labels)
    v = volumes[0]
    keep = v.foreground_slices(2, 0.05)
    assert torch.equal(truth.labels[0, : v.shape[0], : v.shape[1]], torch.from_numpy(v.truth[:, :, keep[0]]))
    with pytest.raises(ValueError, match="train_on must be"):
        TrainConfig(train_on="consensus")


def test_random_windows_cut_every_entry_at_the_same_place():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 16 * 24, dtype=torch.float32).view(2, 1, 16, 24)
    batch = {
        "images": images,
        "labels": images[:, 0].long(),
        "t_features": images.repeat(1, 3, 1, 1),
        "t_bottleneck": images[:, :, ::8, ::8].clone(),
    }
    out = random_crops(batch, (8, 8), g, grid=8)
    for i in range(2):
        corner = out["images"][i, 0, 0, 0].item() - i * 16 * 24
        y, x = divmod(int(corner), 24)
        assert y % 8 == 0 and x % 8 == 0
        assert torch.equal(out["images"][i, 0], images[i, 0, y : y + 8, x : x + 8])
        assert torch.equal(out["labels"][i], images[i, 0, y : y + 8, x : x + 8].long())
        assert torch.equal(out["t_features"][i, 2], images[i, 0, y : y + 8, x : x + 8])
        assert torch.equal(
            out["t_bottleneck"][i, 0], batch["t_bottleneck"][i, 0, y // 8 : y // 8 + 1, x // 8 : x // 8 + 1]
        )
    with pytest.raises(ValueError, match="larger than the training slices"):
        random_crops(batch, (32, 8), g)


def test_contrastive_students_embed_their_training_window(volumes, tmp_path):
    teacher = train(
        TrainConfig(method="teacher", widths=W, steps=2, batch_size=4),
        volumes[:2],
        out=tmp_path / "t",
        device="cpu",
        progress=False,
    )
    assert teacher.step == 2
    cfg = TrainConfig(method="pkl", widths=W, steps=3, batch_size=4, slice_crop=(32, 40))
    student = train(cfg, volumes[:2], tmp_path / "t" / "checkpoint.pt", device="cpu", progress=False)
    assert student.heads["student"].input_size == (32, 40)
    assert np.isfinite(student.history["image"]).all() and np.isfinite(student.history["pixel"]).all()
    kdnet = train(
        TrainConfig(method="kdnet", widths=W, steps=2, batch_size=4, slice_crop=(32, 40)),
        volumes[:2],
        tmp_path / "t" / "checkpoint.pt",
        device="cpu",
        progress=False,
    )
    assert np.isfinite(kdnet.history["image"]).all()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_validations_are_as_many_as_the_profile_asks_and_end_on_the_last_step(profile):
    """Evenly spread validations whose last is the final step, none wasted just before it."""
    from pkd_lessons.lessons.lesson import validation_interval

    cfg = get_profile(profile)
    for steps in (cfg["teacher_steps"], cfg["student_steps"], cfg["cardiac_steps"]):
        every = validation_interval(steps, cfg["validations"])
        points = set(range(every, steps + 1, every)) | {steps}  # the trainer's rule (Trainer.fit)
        assert len(points) == cfg["validations"] and max(points) == steps, (steps, every)
    assert validation_interval(400, 0) == 0


def test_pair_distances_and_retrieval_tell_informative_embeddings_from_uninformative_ones():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(40, 16))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    near = t + 0.05 * rng.normal(size=t.shape)  # each student next to its own teacher embedding
    d = pair_distances(near, t)
    assert d["positive"] < 0.3 < 1.0 < d["negative"]
    r = retrieval(near, t)
    assert r["hits"] == 40 and r["n"] == 40 and r["p_value"] < 1e-10
    same = np.repeat(near[:1], 40, axis=0)  # one embedding for every image: no information
    r = retrieval(same, t)
    assert r["hits"] == 1 and r["p_value"] > 0.3


def test_plateau_reading_follows_the_numbers():
    flat = {
        "val_step": list(range(1, 9)),
        **{f"val_{r}": [0.5, 0.8, 0.85, 0.86, 0.85, 0.86, 0.85, 0.86] for r in ("WT", "TC", "ET")},
    }
    rising = {"val_step": list(range(1, 7)), **{f"val_{r}": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] for r in ("WT", "TC", "ET")}}
    assert "plateaued" in plateau_reading(flat)
    assert "still improving" in plateau_reading(rising) and "+20.0 points" in plateau_reading(rising)
    assert "+30.0 points" in plateau_reading(rising, last=3)
    # a run that rose at its first validation and was flat after it has plateaued (the first
    # validation is not in the comparison)
    teacher = {
        "val_step": [67, 134, 201, 268, 335, 400],
        **{f"val_{r}": [0.376, 0.907, 0.931, 0.899, 0.930, 0.937] for r in ("WT", "TC", "ET")},
    }
    assert "plateaued" in plateau_reading(teacher) and "steps 201-268 vs 335-400" in plateau_reading(teacher)
    assert "Too few validation points" in plateau_reading({"val_step": [1, 2]})


def test_curves_keep_one_colour_per_run():
    histories = {
        "baseline": {"seg": [1.0] * 5},
        "kd": {"seg": [0.9] * 5, "pixel": [0.5] * 5},
        "rkd": {"seg": [0.8] * 5, "pixel": [0.4] * 5},
    }
    fig = plot_curves(histories, terms=("seg", "pixel"), smooth=2)
    seg, pixel = fig.axes
    colour = {line.get_label(): line.get_color() for line in seg.get_lines()}
    assert {line.get_label(): line.get_color() for line in pixel.get_lines()} == {
        "kd": colour["kd"],
        "rkd": colour["rkd"],
    }
    assert [t.get_text() for t in pixel.get_legend().get_texts()] == ["kd", "rkd"]
    fig = plot_training(
        {"run": {"loss": [1.0, 0.5, 0.4], "val_step": [1, 3], "val_WT": [0.2, 0.5]}}, regions=("WT",), smooth=1
    )
    assert fig.axes[1].get_ylabel() == "Dice on the validation cases"


def test_annotation_ceiling(volumes):
    ceiling = annotation_agreement(volumes)
    by_hand = np.mean([region_dice(v.label, v.truth, v.convention)["WT"] for v in volumes])
    assert ceiling["WT"] == pytest.approx(by_hand)
    assert 0.5 < ceiling["WT"] < 1.0  # raters are noisy, not useless


def test_profiles_give_the_comparisons_their_size():
    quick = get_profile("quick")
    train_n, val_n, test_n = quick["split"]
    assert test_n >= 20 and quick["seeds"] >= 3 and train_n + val_n + test_n == quick["brain_cases"]
    for name, settings in PROFILES.items():
        assert set(settings) == set(PROFILES["quick"]), name
    with pytest.raises(ValueError, match="profile must be one of"):
        get_profile("huge")


def test_auto_profile_is_lab_on_a_gpu_and_quick_on_a_cpu(monkeypatch):
    import torch

    from pkd_lessons.lessons import profiles
    from pkd_lessons.training import device

    monkeypatch.setattr(device, "pick_device", lambda preference: torch.device("cpu"))
    assert get_profile("auto")["profile"] == "quick" and get_profile("auto")["device"] == "cpu"
    monkeypatch.setattr(device, "pick_device", lambda preference: torch.device("cuda"))
    lab = get_profile("auto")
    assert lab["profile"] == "lab" and lab["device"] == "auto" and lab["widths"] == (16, 32, 64, 128)
    assert set(lab["methods"]) == set(profiles.ALL_METHODS) and lab["seeds"] >= 3


def test_reference_results_round_trip(tmp_path):
    path = build_reference(
        tmp_path / "ref.json",
        profile="tiny",
        data_root=tmp_path / "data",
        methods=("baseline", "control", "rkd"),
        progress=False,
        seeds_of={"baseline": 3},  # more seeds for the baseline: rkd is paired with its seeds 0 and 1
    )
    data = load_reference(path)
    p = data["provenance"]
    assert {"commit", "command", "device", "date", "seconds", "settings", "versions"} <= set(p)
    assert p["seeds"] == {"baseline": 3, "control": 2, "rkd": 2}
    assert sorted({r["method"] for r in data["records"]}) == ["baseline", "control", "rkd", "teacher"]
    assert "val_WT" in data["histories"]["rkd-s1"] and data["histories"]["teacher-s0"]["loss"]
    # scored again from the checkpoints by the same code: the same numbers, the curves scored then gone
    again = load_reference(rescore_reference(path, tmp_path / "data", out=tmp_path / "re.json", progress=False))
    assert [r["cases"] for r in again["records"]] == [r["cases"] for r in data["records"]]
    assert [r["identity"] for r in again["records"]] == [r["identity"] for r in data["records"]]
    assert "val_WT" not in again["histories"]["rkd-s1"]
    assert again["histories"]["rkd-s1"]["loss"] == data["histories"]["rkd-s1"]["loss"]
    assert f"scored by commit `{again['provenance']['scored']['commit'][:12]}`" in provenance_line(again)
    assert "steps 1, 2, 3" in again["provenance"]["scored"]["what"]
    for history in data["histories"].values():  # thinned, as longer runs' losses are stored: steps 1, 3
        history["loss_step"], history["loss"] = history["loss_step"][::2], history["loss"][::2]
    data["histories"]["rkd-s0"]["loss"][1] *= 1.001  # as if training had changed since: refused, nothing written
    (tmp_path / "changed.json").write_text(json.dumps(data))
    with pytest.raises(
        DataError, match=r"rkd-s0: training no longer reproduces the stored losses to 5 significant digits \(step 3:"
    ):
        rescore_reference(tmp_path / "changed.json", tmp_path / "data", out=tmp_path / "never.json", progress=False)
    assert not (tmp_path / "never.json").exists()
    text = reference_section(("rkd",), path=path)
    assert "profile `tiny`" in text and "2 seeds (baseline: 3)" in text
    assert "rkd, WT" in text and "the baseline's seed(s) 2 left out; detectable" in text
    with pytest.raises(ValueError, match=r"\{'rkd': 4\} would have more seeds than the baseline \(2\)"):
        build_reference(tmp_path / "no.json", profile="tiny", data_root=tmp_path / "data", seeds_of={"rkd": 4})
    assert not (tmp_path / "no.json").exists()
    gaps = reference_gap_section(path)  # the teacher minus the baseline beside real BraTS's range
    assert "profile `tiny`" in gaps and "real range" in gaps and gaps.count("\n| ") == 4
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a reference-results file"):
        load_reference(tmp_path / "bad.json")
    assert load_reference(tmp_path / "missing.json") is None
    assert "No reference results" in reference_section(("rkd",), path=tmp_path / "missing.json")


def test_committed_reference_results_are_complete():
    """The reference results the lessons show: every method and seed of the reference profile, with
    provenance."""
    data = load_reference(REFERENCE_FILE)
    assert data is not None, f"{REFERENCE_FILE} is missing: run `pkd-lessons reference`"
    p = data["provenance"]
    assert p["profile"] == "reference" and p["commit"] != "unknown" and p["seconds"] > 0
    methods = {}
    for r in data["records"]:
        methods.setdefault(r["method"], set()).add(r["seed"])
        assert len(r["cases"]) == p["settings"]["split"][2]
    for m in ("baseline", "control", "kd", "rkd", "ckd", "pkl", "kdnet"):
        assert methods.get(m) == set(range(p["seeds"][m])) and len(methods[m]) >= 5, m
    assert methods["pkl"] == methods["baseline"]
    assert provenance_line(data).startswith("*Reference results: profile `reference`")
    json.dumps(data)  # plain data
    # the comparison the series is about can see 1.5 Dice points in every region
    rows = compare(reference_records(data, ("baseline", "pkl")), reference="baseline")
    detectable = {r["region"]: round(100 * r["detectable"], 2) for r in rows}
    assert all(detectable[region] <= 1.5 for region in ("WT", "TC", "ET")), detectable


def test_hd95_on_the_cut_box_equals_monai_on_the_whole_volume():
    from monai.metrics import compute_hausdorff_distance

    from pkd_lessons.data.labels import BRATS
    from pkd_lessons.evaluation.prediction import score_case

    rng = np.random.default_rng(0)
    truth = np.zeros((40, 44, 30), np.uint8)
    pred = np.zeros_like(truth)
    # class indices (0 background, 1 necrotic core, 2 oedema, 3 enhancing), not BraTS's label values
    truth[10:22, 12:25, 8:18] = 2
    truth[14:18, 15:20, 10:14] = 3
    truth[15:17, 16:18, 11:13] = 1
    pred[11:24, 10:24, 9:19] = 2
    pred[15:19, 15:21, 11:15] = 3
    pred[30:32, 35:38, 25:27] = 1  # a distant false positive
    pred[rng.random(pred.shape) > 0.999] = 2
    spacing = (1.0, 1.5, 2.0)
    scores = score_case(pred, truth, BRATS, spacing)
    for r, name in enumerate(BRATS.region_names):
        p = torch.from_numpy(BRATS.to_regions(pred))[None, r : r + 1].float()
        t = torch.from_numpy(BRATS.to_regions(truth))[None, r : r + 1].float()
        whole = float(
            compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=list(spacing))[0, 0]
        )
        assert scores[name]["hd95"] == pytest.approx(whole, rel=1e-6), name


def test_separability_counts_pairs_and_halves_ties():
    from pkd_lessons.lessons.figures.data import separability

    same = {"m": {"a": np.ones(5), "b": np.ones(5)}}
    assert separability(same, "a", "b")["m"] == 0.5  # identical intensities say nothing
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 60).astype(float), rng.integers(1, 5, 50).astype(float)  # many ties
    pairs = (x[:, None] > y[None]).mean() + 0.5 * (x[:, None] == y[None]).mean()
    assert separability({"m": {"a": x, "b": y}}, "a", "b")["m"] == pytest.approx(max(pairs, 1 - pairs))


def test_synthesis_reads_only_what_its_rows_say():
    """Lesson 06's closing paragraph: each statement follows the numbers it is given."""
    from pkd_lessons.lessons.synthesis import synthesis

    def row(method, region, diff, low, high, verdict, detectable=0.01):
        return {
            "method": method,
            "region": region,
            "diff": diff,
            "low": low,
            "high": high,
            "verdict": verdict,
            "detectable": detectable,
        }

    run = [
        row("pkl", "WT", 0.004, -0.01, 0.02, "no difference detected", 0.025),
        row("pkl", "ET", -0.03, -0.05, -0.01, "worse"),
    ]
    ref = [row("pkl", "WT", 0.008, 0.001, 0.014, "better")]
    text = synthesis(
        run,
        ref,
        teacher={"WT": 0.90, "ET": 0.85},
        baseline={"WT": 0.76, "ET": 0.85},
        ceiling={"WT": 0.88, "ET": 0.87},
        gradient_ratio=41.6,
        control_rows=[row("control", "WT", 0.024, 0.011, 0.037, "better")],
        modality_rows=[
            row("flair", "WT", 0.06, -0.01, 0.13, "no difference detected"),
            row("flair", "ET", -0.4, -0.48, -0.33, "worse"),
        ],
    )
    assert "In this run, pkl against the baseline" in text
    assert (
        "contradict it in ET" in text
        and "cannot tell in WT (differences smaller than the detectable 2.5 points" in text
    )
    assert "They support the claim in WT." in text  # the reference's row
    assert "WT +14.0, ET +0.0 points ahead" in text and "the widest gap is WT" in text.replace("\n", " ")
    assert "WT +2.0, ET -2.0 points: above it in WT, where its targets are cleaner" in text  # against the ceiling
    assert "cleaner targets do help, in WT" in text and "42 times smaller" in text
    assert "given flair instead of T1ce" in text and "moves ET by -40.0 points, beyond the detectable" in text
