#!/usr/bin/env bash
# ppo_jax on one GPU: throughput, compile time and memory (benchmarks/gpu.py).
#
#   bash benchmarks/gpu.sh [SECONDS [--only playground]]   # budget 360 s; < 8 min
#   bash benchmarks/gpu.sh protocol NAME [--tasks T ...]   # benchmarks/protocols.py
#   (e.g. protocol playground-dmc-60m --tasks CartpoleBalance, or protocol
#   cleanrl-dmc-1m: every task of a protocol runs; not yet timed on a GPU)
#
# Needs jax with GPU support and ppo_jax's dependencies. On a machine with
# internet access, from the repository root:
#     pip install -e . 'jax[cuda12]>=0.10,<0.12'     (or jax[cuda13])
# On a machine without it, put the missing wheels in .whl/ (see
# benchmarks/README.md, "On a GPU"): this script installs them offline into /tmp first.
# Writes benchmarks/results/gpu.md and gpu.json (and copies them to $OUT if set).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/ppo_jax_site .whl/*.whl
    export PYTHONPATH="/tmp/ppo_jax_site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! python3 -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")'; then
    echo "gpu.sh: jax sees no GPU (backend: $(python3 -c 'import jax; print(jax.default_backend())')); install jax with CUDA, e.g. pip install 'jax[cuda12]'." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'from importlib.metadata import version as v; print(*(f"{p} {v(p)}" for p in ("jax", "jaxlib", "flax", "optax", "gymnax", "distrax")))'
# Allocate on demand, so that peak memory is what the programs use. No
# rendering here: MUJOCO_GL=disable keeps mujoco's import from loading an
# OpenGL backend (with PyOpenGL but no EGL library it fails with an AttributeError).
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 MUJOCO_GL="${MUJOCO_GL:-disable}"
if [ "${1:-}" = protocol ]; then
    python3 benchmarks/protocols.py "${@:2}" --device all
    if [ -n "${OUT:-}" ]; then
        cp -r benchmarks/results/protocols benchmarks/results/protocols*.md \
            benchmarks/results/protocols_*.png "$OUT"/
    fi
    exit 0
fi
python3 benchmarks/gpu.py --budget "${1:-360}" --out benchmarks/results "${@:2}"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu*.md benchmarks/results/gpu*.json "$OUT"/; fi
