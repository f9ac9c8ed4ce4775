#!/usr/bin/env bash
# The committed full-budget results of experiments 1, 2, 3, 8 and 9, as they were made: on one GPU,
# the four scripts at once, each training several runs at a time (`--jobs`): a 100-layer net of
# width 200 is a chain of small kernels that leaves most of a GPU idle. About 16 minutes on one
# H100 (jax 0.11.2). Every number is the same as that of the same script run serially (`--jobs 1`)
# on that device: each run is a function of its config and seed. Experiment 9's cosine-decay run
# was trained on the CPU afterwards (the same script: it reuses every finished run and trains
# only what is missing).
#
#   LOGS=/tmp/logs bash experiments/run_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-experiments/results/runs}  # git-ignored, like every runs/ folder
mkdir -p "$LOGS"
python experiments/bdfa_deep.py --jobs 6 > "$LOGS/bdfa_deep.log" 2>&1 &
python experiments/beat_paper.py --jobs 5 > "$LOGS/beat_paper.log" 2>&1 &
# Experiment 2's single-seed run (results/fp_depth15/) was made by fp_depth15.py before it became
# seeded (commit 8264629: `python experiments/fp_depth15.py --jobs 2`); its seeded full budget is in
# run_gpu_seeded.sh.
python experiments/nokland_table.py --jobs 3 > "$LOGS/nokland_table.log" 2>&1 &
wait
python experiments/vanishing_gradient.py > "$LOGS/vanishing_gradient.log" 2>&1
