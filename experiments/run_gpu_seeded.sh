#!/usr/bin/env bash
# The seeded study of issue 12 at its full budgets, for a GPU: experiment 1 as a recipe screen and a
# 5-seed final (bdfa_study), experiment 2 over 5 seeds with the error-reading follow-up
# (fp_depth15), the paper's future-work questions 1 and 3 (future_work) and experiment 9 with
# dropout over 5 seeds (deep97). Each script trains several runs at a time (`--jobs`, separate
# processes sharing the GPU; a run's numbers do not depend on N) and writes to
# experiments/results/<name>/full/. Finished runs are reused, so an interrupted call resumes.
#
#   LOGS=/tmp/logs bash experiments/run_gpu_seeded.sh
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-experiments/results/runs}  # git-ignored, like every runs/ folder
mkdir -p "$LOGS"
python experiments/bdfa_study.py --budget full --jobs 6 > "$LOGS/bdfa_study.log" 2>&1 &
python experiments/fp_depth15.py --budget full --jobs 3 > "$LOGS/fp_depth15.log" 2>&1 &
python experiments/future_work.py --budget full --jobs 5 > "$LOGS/future_work.log" 2>&1 &
python experiments/deep97.py --budget full --jobs 5 > "$LOGS/deep97.log" 2>&1 &
wait
