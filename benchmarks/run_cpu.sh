#!/usr/bin/env bash
# Re-runs the CPU measurements of benchmarks/README.md into benchmarks/results/cpu/ (about 35
# minutes of timing on a 2-core machine, plus any waiting for the machine to go quiet).
# One benchmark at a time: never run two at once on a small machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/cpu}
WAIT=${WAIT:-300}  # seconds each configuration may wait for other processes to leave the CPU
mkdir -p "$OUT"
HEADLINE_RULES=forward,bp,fa,dfa,fp1,fp3,bdfa25,bdfa25-bp,bdfa10,bdfa10-bp
ST="python benchmarks/step_time.py --wait-quiet $WAIT"

{ lscpu | grep -E '^(Model name|Architecture|CPU\(s\)|Thread|Core|Socket|L1d|L2|L3)'
  echo "cpu_count (affinity): $(python -c 'import os; print(len(os.sched_getaffinity(0)))')"
  free -g | head -2
  python -c 'import jax, sys; print("python", sys.version.split()[0], "jax", jax.__version__, jax.devices())'
  python -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo "torch: not installed"
  uname -srm; } > "$OUT/machine.txt"

# 1. headline, allocator tuned and default (same rules, same steps)
$ST --rules $HEADLINE_RULES --depth 100 --width 200 --batch 128 --steps 30 --malloc tuned \
    --out "$OUT/headline_w200.jsonl"
WAIT=$WAIT bash benchmarks/malloc_compare.sh "$OUT/malloc_compare.jsonl"
# 2. width 800 (fewer steps: one BP step is about a second)
$ST --rules forward,bp,fa,dfa,fp1,bdfa25,bdfa25-bp --depth 100 --width 800 --batch 128 \
    --steps 12 --warmup 2 --rounds 3 --malloc tuned --out "$OUT/headline_w800.jsonl"
# 3. depth sweep (depths 10 and 200 give the compile-time ratio of every rule)
$ST --rules forward,bp,fa,dfa,fp1,bdfa25,bdfa25-bp --depths 1,2,5,10,25,50,100,200 --width 200 \
    --batch 128 --steps 20 --malloc tuned --out "$OUT/depth_sweep_w200.jsonl"
python benchmarks/update_vs_depth.py --malloc tuned --wait-quiet "$WAIT" --out "$OUT/update_vs_depth.jsonl" \
    --plot "$OUT/update_vs_depth.png"  # update phase (step - forward) against depth, depths 10..400
# 4. PyTorch baselines beside jdfa in one process, at widths 200 and 800 (needs `pip install torch`)
TB="python benchmarks/torch_baseline.py --depth 100 --batch 128 --malloc tuned --wait-quiet $WAIT
    --rules torch_forward,torch_wgrad,torch_dfa,torch_bp --jdfa-rules forward,wgrad,dfa,dfa-noguard,bp"
$TB --widths 200 --steps 40 --rounds 8 --out "$OUT/torch_same_process.jsonl"
$TB --widths 800 --steps 12 --rounds 6 --append --out "$OUT/torch_same_process.jsonl"
# 5. where the time goes
for r in dfa bp bdfa25; do
  python benchmarks/breakdown.py --rule $r --steps 30 --malloc tuned --wait-quiet "$WAIT" \
      --out "$OUT/breakdown_$r.jsonl"
done
# 6. plots
python benchmarks/plot.py "$OUT/depth_sweep_w200.jsonl" --out "$OUT/depth_sweep_w200.png" \
    --title "jdfa step time, XLA temp memory and compile time against depth (CPU)"
# 7. one epoch through the driver, rematerialisation, scale-out over simulated devices
python benchmarks/epoch_time.py --rules bp,dfa,bdfa25 --out "$OUT/epoch_time.jsonl"
$ST --rules forward,dfa,dfa-remat,bp --depths 100,200 --width 200 --batch 128 --steps 20 \
    --malloc tuned --out "$OUT/remat_w200.jsonl"
XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/scaling.py \
    --out "$OUT/scaling.jsonl" --png "$OUT/scaling.png"
# 8. many runs: one vmapped program, groups of 4, or one after another (about 21 minutes)
python benchmarks/sweep_throughput.py --malloc tuned --out "$OUT/sweep_throughput.jsonl" \
    --plot "$OUT/sweep_throughput.png"
# 9. the paper runner: one run at a time or two side by side (pause experiments/paper_budget.py first)
python benchmarks/runs_at_once.py --out "$OUT/runs_at_once.jsonl"
