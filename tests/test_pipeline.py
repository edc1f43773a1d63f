"""The accelerator input path on the CPU: placement, batches, on-device augmentation, the benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pkd_lessons.cli import main
from pkd_lessons.data import CropDataset, find_cases, load_cases
from pkd_lessons.training.augment import BatchAugment, apply_affine, random_flips, random_thetas
from pkd_lessons.training.benchmark import benchmark, benchmark_table, resize_volume
from pkd_lessons.training.config import TrainConfig
from pkd_lessons.training.inputs import BatchFeed, CropFeed, SliceBank, TeacherOutputs, choose_placement
from pkd_lessons.training.precision import Precision
from pkd_lessons.training.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def volumes(brain_set):
    return load_cases(find_cases(brain_set)[:2], progress=False)


@pytest.fixture(scope="module")
def bank(volumes):
    return SliceBank.from_volumes(volumes)


def fake_teacher(bank: SliceBank) -> TeacherOutputs:
    n, _, h, w = bank.images.shape
    g = torch.Generator().manual_seed(0)
    return TeacherOutputs(
        torch.randn((n, 4, h, w), generator=g).half(),
        torch.randn((n, 8, h, w), generator=g).half(),
        torch.randn((n, 16, h // 8, w // 8), generator=g).half(),
    )


def test_placement_rules():
    gpu = torch.device("cuda")
    assert choose_placement(10, CPU) == "device"
    assert choose_placement(4 * 2**30, gpu, free_bytes=16 * 2**30) == "device"
    assert choose_placement(12 * 2**30, gpu, free_bytes=16 * 2**30) == "pinned"  # over half the free memory
    assert choose_placement(12 * 2**30, gpu, "device", free_bytes=16 * 2**30) == "device"
    with pytest.raises(ValueError, match="'pinned' needs a CUDA device"):
        choose_placement(10, CPU, "pinned")
    with pytest.raises(ValueError, match="placement must be one of"):
        choose_placement(10, CPU, "disk")


def test_device_resident_feed_serves_compute_dtypes(bank):
    cached = fake_teacher(bank)
    feed = BatchFeed.build(bank, cached, CPU, bottleneck=True)
    assert feed.placement == "device" and len(feed) == len(bank)
    assert feed.nbytes == sum(
        t.numel() * t.element_size()
        for t in (bank.images, bank.labels, cached.logits, cached.features, cached.bottleneck)
    )
    idx = torch.tensor([3, 0, 3, len(bank) - 1])
    batch = feed.draw(idx)
    assert batch["images"].dtype == torch.float32 and batch["labels"].dtype == torch.int64
    assert torch.equal(batch["images"], bank.images[idx].float())
    assert torch.equal(batch["labels"], bank.labels[idx].long())
    assert torch.equal(batch["t_logits"], cached.logits[idx].float())
    assert torch.equal(batch["t_bottleneck"], cached.bottleneck[idx].float())
    assert "t_bottleneck" not in BatchFeed.build(bank, cached, CPU).draw(idx)


def test_staged_gather_equals_resident_gather(bank):
    """The pinned path's gather-into-a-staging-buffer logic, on the CPU (unpinned there)."""
    cached, idx = fake_teacher(bank), torch.tensor([5, 1, 2, 5])
    resident = BatchFeed.build(bank, cached, CPU, bottleneck=True)
    staged = BatchFeed(resident.tensors, CPU, "pinned")
    a, b = resident.draw(idx), staged.draw(idx)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs a CUDA device")
def test_pinned_feed_equals_device_feed(bank):  # pragma: no cover (GPU machines)
    cached, idx = fake_teacher(bank), torch.tensor([5, 1, 2])
    pinned = BatchFeed.build(bank, cached, torch.device("cuda"), "pinned").draw(idx)
    resident = BatchFeed.build(bank, cached, torch.device("cuda"), "device").draw(idx)
    assert all(torch.equal(pinned[k], resident[k]) for k in resident)


def batch_of(bank: SliceBank, n: int = 6) -> dict[str, torch.Tensor]:
    idx = torch.arange(n) * (len(bank) // n)
    cached = fake_teacher(bank)
    return {
        "images": bank.images[idx].float(),
        "labels": bank.labels[idx].long(),
        "t_logits": cached.logits[idx].float(),
        "t_features": cached.features[idx].float(),
    }


def test_flips_move_image_label_and_teacher_together(bank):
    batch = batch_of(bank)
    g = torch.Generator().manual_seed(3)
    out = BatchAugment(flip=True)(batch, g)
    flips = random_flips(torch.Generator().manual_seed(3), len(batch["images"]), 2)
    for i, (fx, fy) in enumerate(flips.tolist()):
        dims = [d for d, f in ((-2, fx), (-1, fy)) if f]
        for k in ("images", "labels", "t_logits", "t_features"):
            expected = batch[k][i].flip(dims) if dims else batch[k][i]
            assert torch.equal(out[k][i], expected)
    # With intensity and affine off, the random sequence is exactly the flips' (runs stay comparable).
    assert not torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())
    g2 = torch.Generator().manual_seed(3)
    random_flips(g2, len(batch["images"]), 2)
    assert torch.equal(g.get_state(), g2.get_state())


def test_intensity_changes_the_brain_not_the_background(bank):
    batch = batch_of(bank)
    out = BatchAugment(flip=False, intensity=0.2)(batch, torch.Generator().manual_seed(0))
    background = batch["images"] == 0
    assert torch.equal(out["images"][background], batch["images"][background])
    ratio = out["images"][~background] / batch["images"][~background]
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    assert torch.equal(out["labels"], batch["labels"]) and torch.equal(out["t_logits"], batch["t_logits"])


def test_affine_keeps_labels_valid_and_aligned(bank):
    batch = batch_of(bank)
    batch["images"] = batch["labels"][:, None].float().repeat(1, 2, 1, 1)  # an image that *is* the label
    out = BatchAugment(flip=False, affine=15)(batch, torch.Generator().manual_seed(1))
    assert out["labels"].dtype == torch.int64
    assert set(out["labels"].unique().tolist()) <= set(batch["labels"].unique().tolist())
    assert not torch.equal(out["labels"], batch["labels"])
    agree = (out["images"][:, 0].round().long() == out["labels"]).float().mean()
    assert agree > 0.97, "image and label resampled with the same transform"
    identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]).repeat(len(batch["images"]), 1, 1)
    # The identity resamples at the pixel centres; float32 grid coordinates leave ~1e-5 relative error.
    assert torch.allclose(apply_affine(batch["t_logits"], identity), batch["t_logits"], rtol=0, atol=1e-4)
    thetas = random_thetas(torch.Generator().manual_seed(0), 100, 10)
    scale = 1 / thetas[:, 0, :2].norm(dim=1)
    assert scale.min() >= 0.9 - 1e-6 and scale.max() <= 1.1 + 1e-6


def test_trainer_with_augmentation_repeats_and_resumes_exactly(volumes, tmp_path):
    cfg = TrainConfig(method="baseline", widths=(4, 8, 16, 32), steps=4, batch_size=4, intensity=0.1, affine=10)
    a = Trainer(cfg, volumes, device="cpu", progress=False)
    a.fit()
    b = Trainer(cfg, volumes, device="cpu", progress=False)
    b.fit(until=2, checkpoint=tmp_path / "c.pt")
    c = Trainer(cfg, volumes, device="cpu", progress=False).resume(tmp_path / "c.pt")
    c.fit()
    assert a.history == c.history and len(a.history["loss"]) == 4
    # Speed settings do not block a resume.
    d = Trainer(TrainConfig(**(cfg.to_dict() | {"channels_last": False})), volumes, device="cpu", progress=False)
    d.resume(tmp_path / "c.pt")


def test_precision_and_scaler_on_the_cpu(volumes):
    fp16 = Precision(torch.float16, True)
    scaler = fp16.grad_scaler(CPU)
    assert scaler.is_enabled() and float(scaler.scale(torch.tensor(1.0))) == 2.0**16
    cfg = TrainConfig(method="baseline", widths=(4, 8, 16, 32), steps=2, batch_size=2, amp="bf16")
    trainer = Trainer(cfg, volumes, device="cpu", progress=False)
    assert trainer.precision.name == "bf16" and not trainer.scaler.is_enabled()
    trainer.fit()
    assert np.isfinite(trainer.history["loss"]).all()


def test_compile_flag_compiles_the_forward(volumes, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)
    cfg = TrainConfig(method="baseline", widths=(4, 8, 16, 32), steps=1, batch_size=2, compile=True)
    trainer = Trainer(cfg, volumes, device="cpu", progress=False)
    assert compiled == [trainer.model.forward_all]


def test_resize_volume(volumes):
    small = resize_volume(volumes[0], 32)
    assert small.shape[:2] == (32, 32) and small.shape[2] == volumes[0].shape[2]
    assert small.label.dtype == np.uint8 and set(np.unique(small.label)) <= set(np.unique(volumes[0].label))


def test_benchmark_report(brain_set):
    report = benchmark(
        ("teacher", "baseline", "pkl"),
        brain_set,
        cases=2,
        batch_size=4,
        widths=(4, 8, 16, 32),
        steps=2,
        warmup=1,
        repeats=1,
        device="cpu",
        progress=False,
    )
    assert report["device_type"] == "cpu" and report["dtype"] == "fp32" and report["batch_size"] == 4
    assert report["slice"] == [80, 104] and report["slices"] > 0
    for method in ("teacher", "baseline", "pkl"):
        r = report["results"][method]
        assert r["model_step_slices_per_s"] > 0 and r["train_step_slices_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["train_step_slices_per_s"] / r["model_step_slices_per_s"])
        assert 0 < r["pipeline_share"] < 1
        assert r["placement"] == "device" and r["peak_host_memory_mb"] > 0
    assert "overhead_vs_baseline" in report["results"]["pkl"]
    assert "overhead_vs_baseline" not in report["results"]["teacher"]
    table = benchmark_table(report)
    assert table.count("\n| ") == 4 and "(b)/(a)" in table


@pytest.mark.timing
def test_pipeline_costs_little_on_the_cpu(brain_set):
    """The CPU goal: the input pipeline (drawing and augmenting a batch) costs at most 10 % of a step.

    Timed on its own: the ratio of two separately timed steps, (b)/(a), moved below 0.9 on a busy
    machine from noise alone (0.898 with a pipeline share of a few per cent).
    """
    report = benchmark(
        ("baseline",),
        brain_set,
        cases=2,
        batch_size=16,
        widths=(8, 16, 32, 64),
        steps=8,
        warmup=1,
        repeats=3,
        device="cpu",
        progress=False,
    )
    assert report["results"]["baseline"]["pipeline_share"] <= 0.10, report["results"]


def test_benchmark_command_writes_json(brain_set, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "benchmark",
                "--data",
                str(brain_set),
                "--cases",
                "2",
                "--methods",
                "baseline",
                "--batch-size",
                "2",
                "--widths",
                "4,8,16,32",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--repeats",
                "1",
                "--device",
                "cpu",
                "--size",
                "48",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["slice"] == [48, 48] and list(report["results"]) == ["baseline"]
    assert "written:" in capsys.readouterr().out


def test_benchmark_of_the_faithful_profile_times_3d_crops():
    """The faithful profile's benchmark at toy sizes: 3D crops, no augmentation, counted in crops; the
    table and the figure read it."""
    import matplotlib.pyplot as plt

    from pkd_lessons.lessons.figures.training import benchmark_figure

    report = benchmark(
        ("teacher", "baseline", "pkl"),
        profile="faithful",
        cases=2,
        voxel_mm=4.0,
        widths=(4, 8),
        batch_size=2,
        crop=(32, 24, 16),
        steps=1,
        warmup=0,
        repeats=1,
        device="cpu",
        progress=False,
    )
    assert (report["unit"], report["crop"], report["batch_size"], report["widths"]) == ("crop", [32, 24, 16], 2, [4, 8])
    assert report["augment"] == {"flip": False, "intensity": 0.0, "affine": 0.0}
    for r in report["results"].values():
        assert r["model_step_crops_per_s"] > 0 and r["train_step_crops_per_s"] > 0
    table = benchmark_table(report)
    assert "crops 32x24x16" in table and "(b) training step, crops/s" in table
    plt.close(benchmark_figure(report))
    with pytest.raises(ValueError, match="size resamples 2D slices"):
        benchmark(("baseline",), profile="faithful", size=48, device="cpu")
    with pytest.raises(ValueError, match="crop is the 3D crop size"):
        benchmark(("baseline",), crop=(32, 32, 32), device="cpu")


@pytest.mark.parametrize("size", [(32, 40, 24), (48, 48, 200)], ids=["inside", "padded"])
def test_crop_feed_cuts_the_crop_dataset_crops(volumes, size):
    crops = CropDataset(volumes, size, samples=6, seed=4)
    feed = CropFeed.build(crops, CPU)
    assert feed.placement == "device" and feed.nbytes > 0
    batch = feed.draw(range(2, 6))
    assert batch["images"].shape == (4, 4, *size) and batch["labels"].dtype == torch.int64
    for row, item in enumerate(range(2, 6)):
        reference = crops[item]
        assert torch.equal(batch["images"][row], reference["image"].half().float())
        assert torch.equal(batch["labels"][row], reference["label"])


def test_resume_into_an_fp16_run_from_a_run_without_scaler(volumes, tmp_path):
    """A checkpoint saved on a CPU or a bf16 GPU (no scaler state) resumes on an fp16 GPU."""
    cfg = TrainConfig(method="baseline", widths=(4, 8, 16, 32), steps=3, batch_size=2)
    first = Trainer(cfg, volumes, device="cpu", progress=False)
    first.fit(until=1, checkpoint=tmp_path / "c.pt")
    second = Trainer(cfg, volumes, device="cpu", progress=False)
    second.scaler = torch.amp.GradScaler("cpu", enabled=True)  # as on a T4
    second.resume(tmp_path / "c.pt")
    assert second.step == 1 and second.scaler.is_enabled()
