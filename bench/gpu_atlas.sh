#!/usr/bin/env bash
# Issue 19's GPU figures in one call (about 6 minutes on one H200), from the repository
# root on a machine with torch + CUDA; wheels in .whl/ as for bench/gpu_suite.sh:
#   bash bench/gpu_atlas.sh [OUT_DIR]
# 1. the default network at the atlas preset's batch (65,536), fp32 and bf16, eager and
#    compiled with CUDA graphs: the trainer's cells/s (target >= 3M) and bf16 >= fp32;
# 2. the wide network (width 1024, depth 6), bf16: the share of the measured matmul peak
#    (target >= 30%);
# 3. 1M cells sampled (UniPC 10 steps, guidance 2, bf16): the reverse process alone
#    (target <= 10 s) and end to end into an .h5ad.
set -uo pipefail
source "$(dirname "$0")/_gpu_env.sh" "${1:-}"
timeout 200 python3 -m bench --device cuda --precision fp32 bf16 --compile --cells 1000000 \
    --batch 65536 --steps 60 --sample-cells 131072 --sample-steps 10 --repeats 1 \
    2>&1 | tee "$OUT_DIR/atlas_default.log"
timeout 150 python3 -m bench --device cuda --precision bf16 --compile --nets wide --cells 500000 \
    --batch 16384 --steps 40 --sample-cells 65536 --sample-steps 10 --repeats 1 \
    2>&1 | tee "$OUT_DIR/atlas_wide.log"
timeout 150 python3 -m bench.gpu_sample --device cuda --cells 1000000 --steps 10 \
    2>&1 | tee "$OUT_DIR/atlas_sample.log"
