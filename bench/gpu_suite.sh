#!/usr/bin/env bash
# The whole fast test suite and the fidelity benchmark on a CUDA machine, plus one
# throughput row: the CUDA paths of training, sampling, translation and the CLI, which
# CI (CPU only) never runs. From the repository root, on a machine with torch + CUDA:
#   bash bench/gpu_suite.sh [OUT_DIR]          (about 5 minutes on one H100/H200)
# Packages that the machine lacks (anndata, scanpy and their pure-Python needs) may be
# carried as wheels in .whl/ (see ../.library/device/README.md); they are installed into
# /tmp/site. anndata 0.12 needs pandas < 3: where the machine has pandas 3, carry
# pandas 2.3.3 with pytz and tzdata too. Logs go to OUT_DIR (default bench/results/gpu).
set -uo pipefail
source "$(dirname "$0")/_gpu_env.sh" "${1:-}"
python3 - <<'PY' | tee "$OUT_DIR/versions.txt"
import importlib
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
for m in ("numpy", "pandas", "scipy", "sklearn", "anndata", "scanpy", "typer"):
    print(m, importlib.import_module(m).__version__)
PY
# anndata 0.12 cannot write string indexes under pandas 3 (it requires pandas < 3): stop
# here rather than spend device time on dozens of failures that say nothing about scdiff
python3 -c "import pandas, sys; sys.exit(int(pandas.__version__.split('.')[0]) >= 3)" || {
    echo "pandas >= 3 here: carry pandas 2.3.3, pytz and tzdata wheels in .whl/ (see above)"; exit 2; }
# 1. fidelity with training on the GPU (scoring on the CPU), beside the test suite
OMP_NUM_THREADS=4 timeout 330 python3 -m bench.fidelity --seeds 0,1 --train '{"device": "cuda"}' \
    --out "$OUT_DIR" --tag _cuda >"$OUT_DIR/fidelity.log" 2>&1 &
FID=$!
# 2. the fast suite: every test that trains or samples with device "auto" runs on CUDA
OMP_NUM_THREADS=1 timeout 300 python3 -m pytest -q -n 8 -p no:cacheprovider \
    -o addopts="-m 'not slow'" >"$OUT_DIR/pytest.log" 2>&1
echo "pytest exit $?"; tail -n 40 "$OUT_DIR/pytest.log"
wait $FID; echo "fidelity exit $?"; tail -n 120 "$OUT_DIR/fidelity.log"
# 3. throughput of the default network on the GPU, alone on the machine
timeout 150 python3 -m bench --device cuda --precision fp32 bf16 --cells 200000 --batch 4096 \
    --steps 40 --sample-cells 65536 --sample-steps 20 --repeats 1 2>&1 | tee "$OUT_DIR/throughput.log"
