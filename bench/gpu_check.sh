#!/usr/bin/env bash
# One GPU check for docs/performance.md: run from the repository root on a CUDA machine.
#   bash bench/gpu_check.sh            (about 3-5 minutes on one H100)
# Needs torch with CUDA and numpy; NOT anndata/scanpy/safetensors (the benchmark then
# loads scdiff's pure-torch modules only). Prints markdown tables to paste into the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
PY
# 1. the default network at an atlas-sized batch: fp32, bf16, each eager and compiled;
#    200k cells (1.6 GB) sit on the GPU, minibatches are gathered there
timeout 300 python -m bench --device cuda --precision fp32 bf16 --compile --cells 200000 \
    --batch 4096 --steps 80 --sample-cells 65536 --sample-steps 50 --repeats 2
# 2. the issue's reference size (width 512, depth 4), bf16, eager only
timeout 150 python -m bench --device cuda --precision bf16 --nets reference --cells 200000 \
    --batch 4096 --steps 80 --sample-cells 65536 --sample-steps 20 --repeats 1
