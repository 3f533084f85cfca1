#!/usr/bin/env bash
# Are pyproject.toml's version ranges true at their low ends? Installs the
# lowest version of every core dependency that its range allows (a
# constraints file of minimums, jaxlib beside jax) into its own virtual
# environment, .venv-lowest, and runs the suite's core tests on them: the
# algorithm against its references, training, config, networks, checkpoints.
# Not part of .ci/run (its install would take CI past its 10 minutes):
#     bash tests/lowest_versions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
rm -rf .venv-lowest
python3 -m venv .venv-lowest
. .venv-lowest/bin/activate
python - > .venv-lowest/constraints.txt <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
for dependency in dependencies:
    name, lowest = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", dependency).groups()
    print(f"{name}=={lowest}")
    if name == "jax":
        print(f"jaxlib=={lowest}")  # jax's own range for jaxlib starts higher
PY
echo "constraints (the lowest versions the ranges allow):"
sed 's/^/  /' .venv-lowest/constraints.txt
pip install -q -c .venv-lowest/constraints.txt -e . "pytest>=8" "pytest-xdist>=3.5" "scipy>=1.11"
echo "installed:"
pip freeze | grep -i -E "^(jax|jaxlib|flax|optax|distrax|gymnax|numpy|matplotlib|tqdm|chex)==" | sed 's/^/  /'
python -m pytest -q -p no:cacheprovider \
    tests/test_returns.py tests/test_losses.py tests/test_distributions.py \
    tests/test_normalization.py tests/test_update.py tests/test_train.py \
    tests/test_config.py tests/test_config_files.py tests/test_networks.py \
    tests/test_checkpoint.py tests/test_statistics.py tests/test_learning.py \
    tests/test_schedules.py tests/test_evaluation_in_run.py
