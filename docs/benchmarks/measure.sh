#!/usr/bin/env bash
# Measure the training speed and memory of every profile on this machine's accelerator, and write
# the reports where the site's Performance page and README's tables read them:
#   bash docs/benchmarks/measure.sh NAME      (NAME: the card, e.g. t4, a100, h100)
# About 10 minutes on one GPU. Each report records the device, dtype, sizes, versions and date.
set -euo pipefail
name=${1:?name of the card, e.g. t4}
out=$(dirname "$0")
run() { pkd-lessons benchmark --quiet "$@"; }
# The lessons' 2D training step, at the GPU sizes of README's Performance section.
run --size 192 --batch-size 64 --out "$out/$name-2d-batch64.json"
# The paper's experiment: 3D, 80^3 crops of the 1 mm phantom, batch 4 (the precision the card supports:
# bf16 from Ampere on, fp16 with a loss scaler on older cards such as the T4).
run --profile faithful --steps 5 --warmup 2 --repeats 2 --out "$out/$name-faithful-batch4.json"
# What a 16 GB card holds: batch 2 per process (two such processes make the paper's batch 4).
run --profile faithful --batch-size 2 --steps 5 --warmup 2 --repeats 2 --out "$out/$name-faithful-batch2.json"
