#!/usr/bin/env bash
# On a lent GPU machine: train and export the lab profile's pretrained teachers, print the phantom
# data fingerprints (to compare with another machine's), and time the lessons' 2D step and the paper's
# 3D step. Writes into $OUT (teachers/, benchmark reports, log).
#   PKD_LESSONS_COMMIT=$(git rev-parse HEAD) bash docs/benchmarks/lab_teachers.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PKD_LESSONS_PROGRESS=0 PKD_LESSONS_DATA=/tmp/pkd-data
py=${PYTHON:-python3}
cli() { $py -m pkd_lessons "$@"; }
mkdir -p "$OUT/teachers"
start=$(date +%s)
$py - <<'PY'
import time
from pkd_lessons.lessons.lesson import Lesson
t = time.perf_counter()
lesson = Lesson.start("quick", None, "/tmp/pkd-out")
print("phantom fingerprints:", "brain", lesson.fingerprint("brain"), "cardiac", lesson.fingerprint("cardiac"),
      f"({time.perf_counter() - t:.0f} s to make and read them)")
PY
timeout 300 bash -c "$(declare -f cli); py=$py; cli pretrain --profile lab --out '$OUT/teachers'" || echo "pretrain: stopped (status $?)"
echo "pretrain done at $(( $(date +%s) - start )) s"
timeout 100 bash -c "$(declare -f cli); py=$py; cli benchmark --quiet --size 192 --batch-size 64 --out '$OUT/h200-2d-batch64.json'" || echo "2d benchmark: stopped"
echo "2d benchmark done at $(( $(date +%s) - start )) s"
timeout 150 bash -c "$(declare -f cli); py=$py; cli benchmark --quiet --profile faithful --steps 5 --warmup 2 --repeats 2 --out '$OUT/h200-faithful-batch4.json'" || echo "faithful benchmark: stopped"
echo "all done at $(( $(date +%s) - start )) s"
