#!/usr/bin/env bash
# The allocator settings at the headline configuration (depth 100, width 200, batch 128):
# jdfa.tune_allocator at run time ("tuned", what jdfa.train gives), glibc's MALLOC_*_ variables of
# the same thresholds at start-up ("env") and glibc's defaults ("default"), in separate processes
# (glibc reads MALLOC_*_ at start-up), alternating ROUNDS times so that a busy spell of the machine
# does not fall on one setting only.
# Usage: benchmarks/malloc_compare.sh OUT.jsonl [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: malloc_compare.sh OUT.jsonl [ROUNDS]}
ROUNDS=${2:-2}
: > "$OUT"
for _ in $(seq "$ROUNDS"); do
  for m in tuned env default; do
    python benchmarks/step_time.py --rules forward,bp,dfa,bdfa25 --depth 100 --width 200 \
        --batch 128 --steps 20 --malloc $m --wait-quiet "${WAIT:-300}" --no-summary \
        --out "$OUT" --append
  done
done
