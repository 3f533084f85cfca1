"""Are two versions of ppo_jax numerically the same? Bit for bit, on CPU.

Runs a few short trainings (the ``tutorial`` and ``tuned`` presets on
continuous, discrete and grid-observation envs) with a fixed key in this
checkout and in a baseline commit (checked out into a temporary git worktree),
each in its own process, and compares every metric and every parameter leaf
bit for bit. A refactoring that claims "no change of behaviour" shows it here.

    python benchmarks/same_results.py                 # against HEAD
    python benchmarks/same_results.py --baseline c4f54cf

Exit code 0 when every case is identical, 1 otherwise (arrays that only
this checkout has, a metric added since, are listed and not compared). CPU
only: XLA picks kernels per machine, so compare on one machine, in one
invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, baseline_worktree, check_imported_from  # noqa: E402

# (preset, env, iterations): short, but long enough for a difference in any
# part of the update to reach the metrics.
CASES = [
    ("tutorial", "Pendulum-v1", 20),
    ("tuned", "Pendulum-v1", 8),
    ("tuned", "MountainCarContinuous-v0", 4),
    ("tuned", "CartPole-v1", 12),
    ("tuned", "Acrobot-v1", 6),
    ("tuned", "Breakout-MinAtar", 2),
]

# Runs inside the tree under test; uses only the public API that every
# version has (PPOConfig.from_preset, make_train).
WORKER = r"""
import json, sys
import jax, numpy as np
import ppo_jax
from ppo_jax import PPOConfig, make_train

preset, env, iterations, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = PPOConfig.from_preset(preset, env_name=env)
config = config.replace(total_timesteps=iterations * config.batch_size)
runner, metrics = jax.jit(make_train(config))(jax.random.key(0))
arrays = {f"metrics.{k}": np.asarray(v) for k, v in metrics._asdict().items()}
for name, tree in (("actor", runner.agent.actor_params),
                   ("critic", runner.agent.critic_params)):
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        arrays[f"{name}.{i}"] = np.asarray(leaf)
np.savez(out, **arrays)
print(json.dumps({"module": ppo_jax.__file__}))
"""


def run_case(tree: Path, case: tuple[str, str, int], out: Path) -> None:
    preset, env, iterations = case
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, preset, env, str(iterations), str(out)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(out.parent)},
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"{tree}: {case} failed:\n{proc.stderr[-3000:]}")
    check_imported_from(
        tree, json.loads(proc.stdout.strip().splitlines()[-1])["module"]
    )


def compare(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """``(different, new)``: names of the arrays of ``a`` (this checkout) that
    differ from ``b``'s (the baseline) or that ``a`` lacks, and of those only
    ``a`` has (a metric added since: nothing to compare it with)."""
    x, y = np.load(a), np.load(b)
    new = sorted(set(x.files) - set(y.files))
    different = [
        n
        for n in sorted(y.files)
        if n not in x.files
        or x[n].shape != y[n].shape
        or x[n].tobytes() != y[n].tobytes()
    ]
    return different, new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git commit to compare to")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        baseline_worktree(args.baseline, Path(tmp)) as base,
    ):
        failures = 0
        for case in CASES:
            mine, theirs = Path(tmp) / "mine.npz", Path(tmp) / "theirs.npz"
            run_case(ROOT, case, mine)
            run_case(base, case, theirs)
            diff, new = compare(mine, theirs)
            n = len(np.load(mine).files) - len(new)
            status = "identical" if not diff else f"DIFFERENT: {', '.join(diff)}"
            if new:
                status += f" (new here: {', '.join(new)})"
            print(f"{case[0]:>8} {case[1]:<26} {case[2]:>3} it, {n} arrays: {status}")
            failures += bool(diff)
    print(
        f"baseline {args.baseline}: {len(CASES) - failures} of {len(CASES)} identical"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
