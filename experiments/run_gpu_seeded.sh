#!/usr/bin/env bash
# The seeded study of issue 12 at its full budgets, for a GPU: experiment 1 as a recipe screen and a
# 5-seed final (bdfa_study), experiment 2 over 5 seeds with the error-reading follow-up
# (fp_depth15), the paper's future-work questions 1 and 3 (future_work), experiment 9 with
# dropout over 5 seeds (deep97) and the conv net of experiment 11 (conv_mnist). Each recipe's
# seeds train as one vmapped program (`--vmap-seeds`, `jdfa.driver.train_runs`: on a GPU about the
# cost of one run; each seed's numbers are those of the run alone, tested), the five scripts at
# once, into experiments/results/<name>/full/.
# Finished seeds are reused, so an interrupted call resumes.
#
#   LOGS=/tmp/logs bash experiments/run_gpu_seeded.sh
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-experiments/results/runs}  # git-ignored, like every runs/ folder
mkdir -p "$LOGS"
python experiments/bdfa_study.py --budget full --vmap-seeds > "$LOGS/bdfa_study.log" 2>&1 &
python experiments/fp_depth15.py --budget full --vmap-seeds > "$LOGS/fp_depth15.log" 2>&1 &
python experiments/future_work.py --budget full --vmap-seeds > "$LOGS/future_work.log" 2>&1 &
python experiments/deep97.py --budget full --vmap-seeds > "$LOGS/deep97.log" 2>&1 &
python experiments/conv_mnist.py --budget full --vmap-seeds > "$LOGS/conv_mnist.log" 2>&1 &
wait
