#!/usr/bin/env bash
# The main job on the bundled example: train on pbmc (70%), generate cells like the held-out 30%,
# and compare them with the held-out real cells beside the real-vs-real floor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
S=.venv/bin/scdiff
$S train data_examples/pbmc_train.h5ad --condition cell_type --out runs/pbmc --overwrite
$S info runs/pbmc
$S sample runs/pbmc --like data_examples/pbmc_test.h5ad --out runs/pbmc_generated.h5ad --overwrite
$S evaluate data_examples/pbmc_test.h5ad runs/pbmc_generated.h5ad --condition cell_type \
   --train data_examples/pbmc_train.h5ad --out runs/pbmc_report --overwrite
echo "report: runs/pbmc_report/report.md"
