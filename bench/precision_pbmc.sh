#!/usr/bin/env bash
# Does bf16 training cost fidelity? Train the pbmc example in fp32 and in bf16 (same seed),
# generate like the held-out cells, and score both with `scdiff evaluate` beside the floor.
# Usage: bash bench/precision_pbmc.sh [OUT_DIR]   (about 5 minutes on a 2-core CPU)
set -euo pipefail
out=${1:-/tmp/scdiff-precision}
mkdir -p "$out"
for p in fp32 bf16; do
  scdiff train data_examples/pbmc_train.h5ad -c cell_type --precision "$p" --device cpu \
      --out "$out/run-$p" --overwrite --quiet
  scdiff sample "$out/run-$p" --like data_examples/pbmc_test.h5ad --out "$out/fake-$p.h5ad" \
      --device cpu --overwrite --quiet
  scdiff evaluate data_examples/pbmc_test.h5ad "$out/fake-$p.h5ad" -c cell_type \
      --train data_examples/pbmc_train.h5ad --json > "$out/eval-$p.json"
done
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = {p: {r["metric"]: r for r in json.load(open(f"{out}/eval-{p}.json"))} for p in ("fp32", "bf16")}
print("| metric | fp32 | bf16 | floor | fp32 ratio to floor | bf16 ratio to floor |")
print("|---|---|---|---|---|---|")
def f(v, fmt):
    return "-" if v is None else format(v, fmt)
for m, r in rows["fp32"].items():
    b = rows["bf16"][m]
    print(f"| {m} | {f(r['value'], '.4g')} | {f(b['value'], '.4g')} | {f(r['floor'], '.4g')} | "
          f"{f(r['ratio'], '.2f')} | {f(b['ratio'], '.2f')} |")
PY
