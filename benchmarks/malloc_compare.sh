#!/usr/bin/env bash
# The glibc allocator setting against the default, at the headline configuration (depth 100,
# width 200, batch 128): separate processes (glibc reads MALLOC_*_ at start-up), alternating
# tuned / default PAIRS times so that a busy spell of the machine does not fall on one side only.
# Usage: benchmarks/malloc_compare.sh OUT.jsonl [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: malloc_compare.sh OUT.jsonl [PAIRS]}
PAIRS=${2:-2}
: > "$OUT"
for _ in $(seq "$PAIRS"); do
  for m in tuned default; do
    python benchmarks/step_time.py --rules forward,bp,dfa,bdfa25 --depth 100 --width 200 \
        --batch 128 --steps 20 --malloc $m --wait-quiet "${WAIT:-300}" --no-summary \
        --out "$OUT" --append
  done
done
