"""This checkout against a baseline commit: training steps/s and cold compile,
side by side, as ratios.

    python benchmarks/versus.py --baseline main~3     # about 8 minutes on 2 cores
    python benchmarks/versus.py --baseline 1220f1b --rounds 7 --cases matched-64

The baseline is checked out into a temporary git worktree. Every measurement
runs in a fresh process that imports ppo_jax from one tree; the two trees
alternate within each round (the order flips every round), so drift of a
shared, noisy machine hits both alike. Per case and round the ratio is
this checkout / baseline; the table gives the median of each side, the median
ratio and its range over rounds.

Cases (gymnax Pendulum-v1):

- ``matched-64``, ``matched-256``: the configuration matched to PureJaxRL's
  ``ppo_continuous_action`` (64 envs x 32 steps, 4 epochs x 32 minibatches,
  64-64 or 256-256 tanh MLPs, GAE, one Adam with global-norm clipping 0.5,
  learned std, observation and reward normalization, value clipping);
- ``tutorial``: the ``tutorial`` preset (11 envs x 200 steps, full batch);
- ``cold-compile``: the default ``python -m ppo_jax.train`` in a fresh
  process (no compilation cache), its ``compile_s`` (tracing + XLA of the
  chunk the host loop runs).

Steps/s exclude compilation: each worker compiles ``jax.jit(train)`` ahead of
time, runs it once untimed, then times --repeats runs (median). Writes
benchmarks/results/versus.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    ROOT,
    baseline_worktree,
    check_imported_from,
    cpu_model,
)

RESULTS = ROOT / "benchmarks" / "results"

MATCHED = dict(
    num_envs=64, rollout_length=32, update_epochs=4, num_minibatches=32,
    activation="tanh", advantage="gae", gae_lambda=0.95, gamma=0.99, lr=3e-4,
    ent_coef=0.0, vf_coef=0.5, optimizer="joint", max_grad_norm=0.5,
    adam_eps=1e-5, policy_std="learned", clip_actions=True, ortho_init=True,
    normalize_obs=True, normalize_reward=True, clip_value=True,
)  # fmt: skip
# case -> (PPOConfig fields, environment steps per timed run)
TRAINING_CASES: dict[str, tuple[dict, int]] = {
    "matched-64": ({**MATCHED, "hidden_sizes": [64, 64]}, 64 * 32 * 256),
    "matched-256": ({**MATCHED, "hidden_sizes": [256, 256]}, 64 * 32 * 64),
    "tutorial": ({}, 2200 * 200),
}
CASES = (*TRAINING_CASES, "cold-compile")

# Runs inside the tree under test; only the public API every version has.
WORKER = r"""
import json, sys, time
import jax
import ppo_jax
from ppo_jax import PPOConfig, make_train

fields, timesteps, repeats = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if "hidden_sizes" in fields:
    fields["hidden_sizes"] = tuple(fields["hidden_sizes"])
config = PPOConfig(**fields).replace(total_timesteps=timesteps)
key = jax.random.key(0)
compiled = jax.jit(make_train(config)).lower(key).compile()
jax.block_until_ready(compiled(key))
runs = []
for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(key))
    runs.append(time.perf_counter() - t)
steps = config.num_iterations * config.batch_size
print(json.dumps({"sps": [steps / s for s in runs], "module": ppo_jax.__file__}))
"""


def clean_env(tree: Path, home: Path) -> dict[str, str]:
    """The worker's environment: this tree first, no compilation cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(PYTHONPATH=str(tree), HOME=str(home), CI="true")
    env["PPO_JAX_CACHE_DIR"] = "off"  # the CLI's persistent cache: every compile cold
    return env


def training_sps(tree: Path, case: str, repeats: int, home: Path) -> float:
    fields, timesteps = TRAINING_CASES[case]
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(fields), str(timesteps),
         str(repeats)],
        cwd=tree, env=clean_env(tree, home), capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{tree}: {case} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    check_imported_from(tree, out["module"])
    return statistics.median(out["sps"])


def cold_compile_s(tree: Path, home: Path) -> float:
    """``compile_s`` of the default command's closing line, fresh process."""
    with tempfile.TemporaryDirectory(dir=home) as run_dir:
        proc = subprocess.run(
            [sys.executable, "-m", "ppo_jax.train", "--run-dir", run_dir,
             "--overwrite"],
            cwd=tree, env=clean_env(tree, home), capture_output=True, text=True,
        )  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{tree}: default run failed:\n{proc.stderr[-3000:]}")
    final = [line for line in proc.stdout.splitlines() if line.startswith("final:")]
    fields = dict(part.split("=", 1) for part in final[-1].split()[1:])
    return float(fields["compile_s"])


def measure(tree: Path, case: str, repeats: int, home: Path) -> float:
    if case == "cold-compile":
        return cold_compile_s(tree, home)
    return training_sps(tree, case, repeats, home)


def table(results: dict, baseline: str, head: str) -> str:
    lines = [
        "# This checkout against a baseline commit",
        "",
        f"Written by `python benchmarks/versus.py --baseline {baseline}` on "
        f"{cpu_model()}, {os.cpu_count()} cores, {date.today()}: this checkout "
        f"({head}) against {baseline}, {results['rounds']} alternating rounds, "
        "one fresh process per measurement. Steps/s: median of the rounds "
        "(each a median of timed runs, compile excluded); compile: seconds of "
        "the default command's chunk (lower is better). Ratio: this / baseline "
        "per round, median [min, max]; above 1 is better for steps/s, below 1 "
        "for compile.",
        "",
        "| case | baseline | this checkout | ratio | range |",
        "|---|---|---|---|---|",
    ]
    for case, sides in results["cases"].items():
        base, mine = sides["baseline"], sides["current"]
        ratios = [m / b for m, b in zip(mine, base, strict=True)]
        unit = " s" if case == "cold-compile" else ""
        fmt = "{:.2f}" if case == "cold-compile" else "{:,.0f}"
        lines.append(
            f"| {case} | {fmt.format(statistics.median(base))}{unit} "
            f"| {fmt.format(statistics.median(mine))}{unit} "
            f"| {statistics.median(ratios):.2f} "
            f"| {min(ratios):.2f} - {max(ratios):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="git commit to compare to")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs a worker")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--out", default="versus", help="results/<out>.md and .json")
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    results: dict = {"rounds": args.rounds, "baseline": args.baseline, "head": head}
    results["cases"] = {c: {"baseline": [], "current": []} for c in args.cases}
    with (
        tempfile.TemporaryDirectory() as tmp,
        baseline_worktree(args.baseline, Path(tmp)) as base,
    ):
        for r in range(args.rounds):
            sides = [("baseline", base), ("current", ROOT)]
            for side, tree in sides if r % 2 == 0 else sides[::-1]:
                for case in args.cases:
                    value = measure(tree, case, args.repeats, Path(tmp))
                    results["cases"][case][side].append(value)
                    print(f"round {r + 1} {side:>8} {case:<13} {value:,.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=1))
    text = table(results, args.baseline, head)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
