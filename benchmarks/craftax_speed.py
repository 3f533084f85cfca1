"""Craftax-Classic-Symbolic-v1 with ppo_jax on a CPU: env-only steps/s,
PPO training steps/s and a short learning curve.

    pip install -e '.[craftax]'
    python benchmarks/craftax_speed.py                  # about 12 min on 2 cores
    python benchmarks/craftax_speed.py --seeds 1 --total-timesteps 131072
    python benchmarks/craftax_speed.py --skip-learning  # throughput only, ~3 min

Throughput, compile excluded and reported apart, medians of --repeats timed
calls after one warm-up (``benchmarks/common.py``'s ``timed``):

- env only: ``craftax/Craftax-Classic-Symbolic-v1`` as ppo_jax steps it
  (:class:`ppo_jax.envs.craftax.CraftaxEnv`, vmapped over the envs, uniformly
  random actions, in a ``lax.scan``): worlds generated only for envs whose
  episode ended;
- env only, per-env resets: the same step without its batching rule, which
  generates a world for every env at every step, as a per-env auto-reset
  (gymnax's, craftax's own ``AutoReset`` envs) does under ``vmap``: what the
  batching rule saves;
- training: whole PPO iterations (rollout, GAE, 4 epochs x 8 minibatches of
  the 512-512-512 networks), a compiled chunk of 2 iterations.

Learning: ``benchmarks/learning.py``'s ``run`` (seeds vmapped, one compile;
final policies evaluated deterministically over the 10,000-step limit), with
:data:`CRAFTAX_TUNED`. Writes benchmarks/results/craftax.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

import jax
import numpy as np

try:
    import craftax  # noqa: F401
except ImportError:
    raise SystemExit("craftax is missing: pip install -e '.[craftax]'") from None

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # noqa: E402
from common import (  # noqa: E402
    CRAFTAX_TUNED,
    machine,
    random_action_steps,
    reset_then,
    timed,
)

from ppo_jax import PPOConfig, build_pipeline  # noqa: E402
from ppo_jax.algo.ppo import make_chunk  # noqa: E402
from ppo_jax.envs import preset_config  # noqa: E402
from ppo_jax.envs.craftax import CraftaxEnv  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENV = "craftax/Craftax-Classic-Symbolic-v1"
ENV_STEPS = 256  # scan length of the env-only measurement
PER_ENV_STEPS = 16  # the per-env-reset variant is ~30x slower


def craftax_config(**overrides: Any) -> PPOConfig:
    return preset_config("tuned", env_name=ENV, **{**CRAFTAX_TUNED, **overrides})


def env_only(config: PPOConfig, per_env_resets: bool, repeats: int) -> dict:
    """Steps/s of the env alone (random actions), compile excluded."""
    env, params, spec = build_pipeline(config).setup
    assert isinstance(env, CraftaxEnv)  # the adapter, whose _step is per env
    step = env._step if per_env_resets else env.step
    n = config.num_envs
    steps = PER_ENV_STEPS if per_env_resets else ENV_STEPS

    run = reset_then(
        env.reset,
        params,
        n,
        random_action_steps(
            step,
            params,
            n,
            steps,
            lambda k: jax.random.randint(k, (n,), 0, spec.action_dim),
        ),
    )

    compile_s, run_s = timed(run, jax.random.key(0), repeats=repeats, warmup=True)
    # Includes one reset of every env (small against the steps for the
    # batched variant; one step's worth for the per-env one).
    return {"sps": n * steps / run_s, "compile_s": compile_s, "steps": steps}


def training(config: PPOConfig, repeats: int, iterations: int = 2) -> dict:
    pipeline = build_pipeline(config)
    hp = config.hyperparams()
    runner = jax.jit(pipeline.init)(jax.random.key(0), hp)
    chunk = make_chunk(pipeline, iterations)
    compile_s, run_s = timed(chunk, runner, hp, repeats=repeats, warmup=True)
    return {"sps": iterations * config.batch_size / run_s, "compile_s": compile_s}


def curve_points(record: dict, points: int = 10) -> list[tuple[int, float, float]]:
    """About ``points`` (steps, mean, std) of the seed-mean training curve."""
    x = np.asarray(record["timesteps"])
    mean, std = np.asarray(record["curve_mean"]), np.asarray(record["curve_std"])
    idx = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return [(int(x[i]), float(mean[i]), float(std[i])) for i in idx]


def write(out: dict, path: Path) -> None:
    config = craftax_config()
    lines = [
        "# Craftax-Classic-Symbolic-v1 on a CPU",
        "",
        f"Written by `python benchmarks/craftax_speed.py` on {out['machine']}, "
        f"{out['date']}.",
        "",
        "The 2 cores were shared with other work running at the same time "
        "(another engineer's tests and benchmarks), so the steps/s below are "
        f"noisy: medians of {out['repeats']} timed calls after a warm-up, "
        "compile excluded; an idle machine may be faster.",
        "",
        f"Settings: the `tuned` preset with the Craftax paper's PPO "
        f"(Craftax_Baselines `ppo.py` defaults) scaled to 2 cores: "
        f"{config.num_envs} envs x {config.rollout_length} steps (paper: 1024 "
        f"x 64), lr {config.lr:g} annealed, gamma {config.gamma:g}, GAE lambda "
        f"{config.gae_lambda:g}, clip {config.clip_eps:g}, entropy "
        f"{config.ent_coef:g}, value {config.vf_coef:g} clipped, gradient norm "
        f"{config.max_grad_norm:g}, {config.update_epochs} epochs x "
        f"{config.num_minibatches} minibatches, actor and critic "
        f"{'-'.join(map(str, config.hidden_sizes))} {config.activation}.",
    ]
    if out.get("throughput"):
        t = out["throughput"]
        lines += [
            "",
            "## Throughput",
            "",
            "| measurement | envs x steps | steps/s | compile s |",
            "|---|---|---|---|",
            f"| env only (ppo_jax's step: worlds generated for ended envs only) | "
            f"{config.num_envs} x {t['env']['steps']} | {t['env']['sps']:,.0f} | "
            f"{t['env']['compile_s']:.1f} |",
            f"| env only, per-env resets (a world generated for every env at "
            f"every step) | {config.num_envs} x {t['per_env']['steps']} | "
            f"{t['per_env']['sps']:,.0f} | {t['per_env']['compile_s']:.1f} |",
            f"| PPO training (rollout + 4 x 8 minibatch updates) | "
            f"{config.num_envs} x {config.rollout_length} | "
            f"{t['train']['sps']:,.0f} | {t['train']['compile_s']:.1f} |",
            "",
            f"Random actions; the batching rule of ppo_jax's Craftax step makes "
            f"the env {t['env']['sps'] / t['per_env']['sps']:.0f}x faster than "
            "per-env resets here. Training is bound by the 3 x 512 networks "
            "on a CPU, not by the env.",
        ]
    if out.get("learning"):
        r = out["learning"]
        lines += [
            "",
            "## Learning",
            "",
            f"{r['seeds']} seeds x {r['steps']:,} steps, seeds vmapped in one "
            f"compile (`benchmarks/learning.py`'s `run`). Return: Craftax-"
            "Classic's reward, +1 per achievement unlocked (22 in all) and "
            "+-0.1 per health point gained or lost. Training return: episodes "
            "ended in the last 10 iterations; evaluation: the deterministic "
            f"policy (argmax), {r['eval_episodes']} episodes per seed, up to "
            "the 10,000-step limit. A random policy gets about 1-2 (the first "
            "iterations). Here the argmax policy scores below the sampling "
            "policy it was trained as (its training return).",
            "",
            "| seeds | steps/seed | train return | eval return | train s | "
            "compile s | steps/s (all seeds) |",
            "|---|---|---|---|---|---|---|",
            f"| {r['seeds']} | {r['steps']:,} | {learning.fmt(r['train_return'])} "
            f"| {learning.fmt(r['eval_return'])} | {r['train_s']:.0f} | "
            f"{r['compile_s']:.0f} | {r['sps']:,.0f} |",
            "",
            "Training curve (seed-mean episodic return, mean ± std over seeds):",
            "",
            "| steps | return |",
            "|---|---|",
        ]
        lines += [
            f"| {steps:,} | {mean:.2f} ± {std:.2f} |"
            for steps, mean, std in curve_points(r)
        ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--total-timesteps", type=int, default=64 * 64 * 64)
    p.add_argument("--eval-episodes", type=int, default=4)
    p.add_argument("--skip-learning", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "craftax.md")
    args = p.parse_args()
    out: dict = {"machine": machine(), "date": str(date.today())}
    out["repeats"] = args.repeats
    config = craftax_config()
    if not args.skip_throughput:
        print("env only ...", flush=True)
        env = env_only(config, per_env_resets=False, repeats=args.repeats)
        print(f"env only: {env['sps']:,.0f} steps/s", flush=True)
        per_env = env_only(config, per_env_resets=True, repeats=args.repeats)
        print(f"env only, per-env resets: {per_env['sps']:,.0f} steps/s", flush=True)
        train = training(config, args.repeats)
        print(f"training: {train['sps']:,.0f} steps/s", flush=True)
        out["throughput"] = {"env": env, "per_env": per_env, "train": train}
        write(out, args.out)
    if not args.skip_learning:
        print(f"learning: {args.seeds} seeds x {args.total_timesteps:,} ...")
        out["learning"] = learning.run(
            "tuned",
            ENV,
            args.seeds,
            args.total_timesteps,
            args.eval_episodes,
            **CRAFTAX_TUNED,
        )
        r = out["learning"]
        print(
            f"learning: train return {learning.fmt(r['train_return'])}, eval "
            f"return {learning.fmt(r['eval_return'])}, {r['train_s']:.0f} s",
            flush=True,
        )
    write(out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
