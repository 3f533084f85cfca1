"""Learning results: train a preset on an env for several seeds (vmapped, one
compile), then evaluate each final policy deterministically.

    python benchmarks/learning.py --preset tutorial --env Pendulum-v1 \
        --seeds 3 --total-timesteps 1000000

Prints one line per seed and a summary, and appends a row to
``benchmarks/results/learning.md`` (``--no-write`` to skip). Training return
is the mean over episodes that ended in the last 10 iterations (the CLI's
``final: mean_return``); evaluation return is the deterministic (mean-action)
policy over ``--eval-episodes`` episodes.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import compile_and_time, machine  # noqa: E402

from ppo_jax import PPOConfig, build_pipeline, make_train  # noqa: E402
from ppo_jax.evaluate import evaluate_policy  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "learning.md"


def last_iterations_return(metrics, last: int = 10) -> np.ndarray:
    """Per seed: mean return of episodes ended in the last ``last`` iterations."""
    ret = np.nan_to_num(np.asarray(metrics.mean_return)[:, -last:])
    count = np.asarray(metrics.num_episodes)[:, -last:]
    return (ret * count).sum(1) / np.maximum(count.sum(1), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tutorial")
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    config = PPOConfig.from_preset(
        args.preset, env_name=args.env, total_timesteps=args.total_timesteps
    ).validate()
    keys = jax.random.split(jax.random.key(config.seed), args.seeds)
    (runner, metrics), compile_s, run_s = compile_and_time(
        jax.vmap(make_train(config)), keys
    )
    steps = config.num_iterations * config.batch_size
    pipeline = build_pipeline(config)

    def evaluate(params, obs_stats, key):
        return evaluate_policy(pipeline, params, obs_stats, key, args.eval_episodes)

    eval_returns, _ = jax.jit(jax.vmap(evaluate))(
        runner.agent.actor_params,
        runner.envs.obs_stats,
        jax.random.split(jax.random.key(10_000), args.seeds),
    )
    train_ret = last_iterations_return(metrics)
    eval_ret = np.asarray(eval_returns).mean(axis=1)
    for s in range(args.seeds):
        print(
            f"seed {s}: train_return={train_ret[s]:.1f} eval_return={eval_ret[s]:.1f}"
        )
    sps = steps * args.seeds / run_s
    summary = (
        f"| {args.preset} | {args.env} | {args.seeds} | {steps:,} | "
        f"{train_ret.mean():.1f} ± {train_ret.std():.1f} | "
        f"{eval_ret.mean():.1f} ± {eval_ret.std():.1f} | {args.eval_episodes} | "
        f"{run_s:.1f} | "
        f"{compile_s:.1f} | {sps:,.0f} | {machine()} | {date.today()} |"
    )
    print(
        f"{args.preset} on {args.env}, {args.seeds} seeds x {steps:,} steps: "
        f"train return {train_ret.mean():.1f} ± {train_ret.std():.1f}, "
        f"eval return {eval_ret.mean():.1f} ± {eval_ret.std():.1f}; "
        f"{run_s:.1f} s ({sps:,.0f} steps/s over all seeds), compile {compile_s:.1f} s"
    )
    if not args.no_write:
        if not RESULTS.exists():
            RESULTS.write_text(
                "# Learning results\n\n"
                "Rows appended by `python benchmarks/learning.py` (see its --help).\n"
                "Returns: mean ± std over seeds. train: episodes ended in the last\n"
                "10 iterations; eval: deterministic policy, `eval eps` episodes per\n"
                "seed. Seeds are vmapped in one compile; train s excludes compile.\n\n"
                "| preset | env | seeds | steps/seed | train return | eval return | "
                "eval eps | train s | compile s | steps/s (all seeds) | machine | "
                "date |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            )
        with open(RESULTS, "a") as f:
            f.write(summary + "\n")


if __name__ == "__main__":
    main()
