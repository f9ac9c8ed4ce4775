#!/usr/bin/env bash
# The GPU measurements of benchmarks/README.md, into benchmarks/results/gpu/ (about 4 minutes on one
# H100). Same configurations as run_cpu.sh where they make sense on a GPU; run it on a quiet device.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # PyTorch and JAX share the device in torch_baseline.py
HEADLINE_RULES=forward,bp,fa,dfa,fp1,fp3,bdfa25,bdfa25-bp,bdfa10,bdfa10-bp
ST="python benchmarks/step_time.py --rounds 5"

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python -c 'import jax, sys; print("python", sys.version.split()[0], "jax", jax.__version__, jax.devices())'
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || true
  uname -srm; } > "$OUT/machine.txt"

# 1. headline (batch 128 as on the CPU, and batch 1024, where a GPU has work to do)
$ST --rules $HEADLINE_RULES --depth 100 --width 200 --batch 128 --steps 100 --out "$OUT/headline_w200.jsonl"
$ST --rules $HEADLINE_RULES --depth 100 --width 200 --batch 1024 --steps 100 --out "$OUT/headline_w200_b1024.jsonl"
# 2. width 800 and a wide net (width 2048)
$ST --rules forward,bp,fa,dfa,fp1,bdfa25,bdfa25-bp --depth 100 --widths 800,2048 --batch 128 --steps 50 \
    --out "$OUT/wide.jsonl"
# 3. depth sweep (compile time against depth too)
$ST --rules forward,bp,fa,dfa,fp1,bdfa25,bdfa25-bp --depths 1,2,5,10,25,50,100,200 --width 200 \
    --batch 128 --steps 50 --out "$OUT/depth_sweep_w200.jsonl"
python benchmarks/update_vs_depth.py --steps 50 --out "$OUT/update_vs_depth.jsonl" \
    --plot "$OUT/update_vs_depth.png"  # update phase (step - forward) against depth: DFA's should be flat
# 4. PyTorch on the same GPU, jdfa's steps timed in the same rounds
python benchmarks/torch_baseline.py --device cuda --depth 100 --width 200 --batch 128 --steps 100 \
    --jdfa-rules forward,dfa,bp --out "$OUT/torch_w200.jsonl"
# 5. rematerialisation
$ST --rules forward,dfa,dfa-remat,bp --depths 100,200 --width 200 --batch 128 --steps 50 \
    --out "$OUT/remat_w200.jsonl"
# 6. plot
python benchmarks/plot.py "$OUT/depth_sweep_w200.jsonl" --out "$OUT/depth_sweep_w200.png" \
    --title "jdfa step time, XLA temp memory and compile time against depth (H100)"
# 7. many runs: the target is 32 vmapped depth-100 runs >= 16x the run-steps/s of one run
python benchmarks/sweep_throughput.py --steps 50 --repeats 5 --group 8 --out "$OUT/sweep_throughput.jsonl" \
    --plot "$OUT/sweep_throughput.png"
