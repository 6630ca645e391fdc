# Sourced by the bench/gpu_*.sh scripts: from the repository root, the output folder
# ($OUT_DIR, from the script's first argument; default bench/results/gpu), the wheels
# carried in .whl/ installed into /tmp/site (a bare device machine lacks anndata and
# scanpy; see ../.library/device/README.md), scdiff's src/ and the repository root on the
# path (what the editable install would give; the root serves `python -m bench`), and the GPU named.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR="${1:-bench/results/gpu}"
mkdir -p "$OUT_DIR"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:$PWD:${PYTHONPATH:-}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
