"""What each CPU speed-up of the quick profile buys, each as a ratio measured in one run.

Usage: ``python docs/benchmarks/cpu_speedups.py [--out FILE] [--compile]``

Every comparison times its two variants alternately in the same process (the fastest of several
rounds counts, as ``timeit`` does: other load only ever slows a round down) on the quick profile's
student (widths 8/16/32/64, batch 16, 64x64 windows; inference in batches of 32 windows):

* projection-head pooling, forward and backward: ``avg_pool`` (O(window) per output) against the
  running-sum box filter (:func:`pkd_lessons.models.heads.box_mean`);
* the regularization factor's "teacher is right" test: ``argmax`` against ``max(...).indices``;
* a training step and an inference batch in float32 against bfloat16 autocast;
* two training runs one after the other with two threads each, against side by side in two
  processes of one thread each (what :meth:`pkd_lessons.lessons.Lesson.runs` does);
* with ``--compile``: a training step with and without ``torch.compile`` (and the compilation's
  cost), which the student survives since its strided projections subsample first.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

import torch
import torch.nn.functional as F

from pkd_lessons.models import student
from pkd_lessons.models.heads import box_mean
from pkd_lessons.training.precision import cpu_bf16_native


def fastest(variants: dict, rounds: int = 6, calls: int = 5) -> dict[str, float]:
    """Milliseconds per call of each variant: the fastest of ``rounds`` alternating rounds."""
    for f in variants.values():
        f()
        f()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, f in variants.items():
            start = time.perf_counter()
            for _ in range(calls):
                f()
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1000)
    return best


def train_step(net, x, y, bf16: bool = False):
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits = net(x)[0]
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def inference(net, x, bf16: bool = False):
    def run():
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            net(x)

    return run


def steps_per_second(threads: int, steps: int) -> float:
    """One process's training steps per second with ``threads`` threads (run as a child process)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(threads), str(steps)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def child(threads: int, steps: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = train_step(
        student(4, 2, (8, 16, 32, 64), dropout=0.0), torch.randn(16, 1, 64, 64), torch.randint(0, 4, (16, 64, 64))
    )
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(steps / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/benchmarks/speedups/cpu-2core.json")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    torch.manual_seed(0)
    net = student(4, 2, (8, 16, 32, 64), dropout=0.0)
    x, y = torch.randn(16, 1, 64, 64), torch.randint(0, 4, (16, 64, 64))
    windows = torch.randn(32, 1, 64, 64)
    features = torch.randn(16, 8, 64, 64, requires_grad=True)
    logits = torch.randn(300, 4, 80, 104)[torch.randint(0, 300, (16,))][..., 5:69, 10:74]  # a cropped batch
    rows = []

    def compare(what: str, before: str, after: str, times: dict[str, float]) -> None:
        rows.append(
            {"what": what, "before": before, "after": after, "ms_before": times[before], "ms_after": times[after]}
        )
        ratio = times[before] / times[after]
        print(f"{what}: {before} {times[before]:.1f} ms, {after} {times[after]:.1f} ms, x{ratio:.2f}")

    compare(
        "projection-head pooling (fwd+bwd)",
        "avg_pool",
        "box_mean",
        fastest(
            {
                "avg_pool": lambda: (
                    F.avg_pool2d(F.avg_pool2d(features, (32, 1), stride=1), (1, 32), stride=1).sum().backward()
                ),
                "box_mean": lambda: box_mean(box_mean(features, 2, 32), 3, 32).sum().backward(),
            }
        ),
    )
    compare(
        "teacher-is-right test",
        "argmax",
        "max indices",
        fastest({"argmax": lambda: logits.argmax(1), "max indices": lambda: logits.max(1).indices}),
    )
    compare(
        "training step",
        "fp32",
        "bf16",
        fastest(
            {"fp32": train_step(copy.deepcopy(net), x, y), "bf16": train_step(copy.deepcopy(net), x, y, bf16=True)}
        ),
    )
    compare(
        "inference, 32 windows",
        "fp32",
        "bf16",
        fastest({"fp32": inference(net.eval(), windows), "bf16": inference(net.eval(), windows, bf16=True)}),
    )
    if args.compile:
        start = time.perf_counter()
        compiled = train_step(torch.compile(copy.deepcopy(net).train()), x, y)
        compiled()
        rows.append({"what": "torch.compile's first step", "seconds": time.perf_counter() - start})
        compare(
            "training step",
            "eager",
            "compiled",
            fastest({"eager": train_step(copy.deepcopy(net).train(), x, y), "compiled": compiled}),
        )
    one = steps_per_second(2, 60)
    with subprocess.Popen([sys.executable, __file__, "--child", "1", "60"], stdout=subprocess.PIPE, text=True) as other:
        mine = steps_per_second(1, 60)
        theirs = float(other.communicate()[0].strip().splitlines()[-1])
    compare(
        "two training runs (steps per second, as ms per step)",
        "one after the other, 2 threads",
        "side by side, 1 thread each",
        {"one after the other, 2 threads": 1000 / one, "side by side, 1 thread each": 1000 / (mine + theirs)},
    )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "bf16_native": cpu_bf16_native(),
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
