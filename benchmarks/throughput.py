"""Training throughput (environment steps per second) and its ceilings.

    python benchmarks/throughput.py        # 6-10 minutes on a 2-core CPU

Measured, all on Pendulum-v1, compile time excluded and reported apart,
``block_until_ready`` before stopping the clock, median of --repeats runs:

- training SPS of the ``tutorial`` preset and of a configuration matched to a
  published JAX PPO ("matched": 64 envs x 32 steps, 4 epochs x 32 minibatches,
  64-64 tanh, GAE, learned std, one Adam with clipping), across num_envs at a
  fixed rollout_length of 32, and at a fixed batch of 4096 steps;
- training SPS with 1, 4, 16, 64 vmapped seeds (tutorial preset, all steps);
- ceilings: env stepping alone (random actions) and the rollout alone (env +
  actor forward + sampling), across num_envs;
- compile time of each preset's whole run, FLOPs per environment step (counted
  from the network sizes, see ``flops_per_step``) and the GFLOP/s achieved
  against this machine's float32 matmul rate.

Writes benchmarks/results/throughput.json, throughput.md and throughput.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, random_action_steps, timed  # noqa: E402

from ppo_jax import PPOConfig, build_pipeline, make_train  # noqa: E402
from ppo_jax.algo.rollout import reset_envs  # noqa: E402
from ppo_jax.networks.memory import initial_memory  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NUM_ENVS = (1, 4, 16, 64, 256, 1024, 4096)
FIXED_BATCH = ((4, 1024), (16, 256), (64, 64), (256, 16), (1024, 4))
SEEDS = (1, 4, 16, 64)
MATCHED = PPOConfig(
    num_envs=64,
    rollout_length=32,
    update_epochs=4,
    num_minibatches=32,
    activation="tanh",
    advantage="gae",
    gae_lambda=0.95,
    gamma=0.99,
    lr=3e-4,
    ent_coef=0.0,
    vf_coef=0.5,
    optimizer="joint",
    max_grad_norm=0.5,
    adam_eps=1e-5,
    policy_std="learned",
    clip_actions=True,
    ortho_init=True,
)
PRESETS = {"tutorial": PPOConfig(), "matched": MATCHED}


def iterations_for(batch: int) -> int:
    """About 200k steps per measurement, between 3 and 200 iterations."""
    return max(3, min(200, math.ceil(200_000 / batch)))


def training_sps(config: PPOConfig, repeats: int, num_seeds: int = 1):
    config = config.replace(
        total_timesteps=iterations_for(config.batch_size) * config.batch_size
    )
    if num_seeds == 1:
        fn, args = make_train(config), (jax.random.key(0),)
    else:
        keys = jax.random.split(jax.random.key(0), num_seeds)
        fn, args = jax.vmap(make_train(config)), (keys,)
    compile_s, run_s = timed(fn, *args, repeats=repeats)
    steps = num_seeds * config.num_iterations * config.batch_size
    return steps / run_s, compile_s


def env_ceiling_sps(num_envs: int, steps: int, repeats: int) -> float:
    """vmapped env.step with uniformly random actions, in lax.scan."""
    pipeline = build_pipeline(PPOConfig(num_envs=num_envs))
    env, params, spec = pipeline.setup
    envs = reset_envs(
        pipeline.setup,
        jax.random.key(0),
        pipeline.config,
        initial_memory(pipeline.networks, pipeline.config.num_envs),
    )
    run = random_action_steps(
        env.step,
        params,
        num_envs,
        steps,
        lambda k: jax.random.uniform(
            k, (num_envs, spec.action_dim), minval=-2.0, maxval=2.0
        ),
    )

    _, run_s = timed(run, envs.state, jax.random.key(1), repeats=repeats)
    return num_envs * steps / run_s


def rollout_ceiling_sps(num_envs: int, steps: int, repeats: int) -> float:
    """The training rollout (env + actor forward + sampling) alone."""
    config = PPOConfig(num_envs=num_envs, rollout_length=steps)
    pipeline = build_pipeline(config)
    hp = config.hyperparams()
    runner = jax.jit(pipeline.init)(jax.random.key(0), hp)

    def run(params, envs, key):
        return pipeline.rollout(params, envs, key, hp)[1].reward.sum()

    _, run_s = timed(
        run, runner.agent.actor_params, runner.envs, jax.random.key(1), repeats=repeats
    )
    return num_envs * steps / run_s


def flops_per_step(config: PPOConfig, obs_dim: int = 3, action_dim: int = 1) -> float:
    """Float operations per environment step in the networks (2 per MAC).

    Actor: one forward in the rollout plus, per epoch, a forward and a backward
    (~2x forward) on every sample. Critic: one forward for the values plus the
    same per epoch. Elementwise work, the env and the optimizer are left out:
    this is the matmul work that dominates.
    """
    sizes = (obs_dim, *config.hidden_sizes)

    def forward(out: int) -> int:
        layers = list(zip(sizes, (*config.hidden_sizes, out), strict=True))
        return 2 * sum(a * b for a, b in layers)

    per_epoch = 3 * (forward(action_dim) + forward(1))
    return forward(action_dim) + forward(1) + config.update_epochs * per_epoch


def matmul_gflops(repeats: int) -> float:
    """float32 GFLOP/s of a 1024x1024 matmul on this device."""
    n = 1024
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    _, run_s = timed(lambda x: x @ x, a, repeats=max(repeats, 5))
    return 2 * n**3 / run_s / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    r = args.repeats
    out = {"machine": machine(), "date": str(date.today()), "repeats": r}

    def log(text):
        print(text, flush=True)

    out["matmul_gflops"] = matmul_gflops(r)
    log(f"matmul: {out['matmul_gflops']:.1f} GFLOP/s")
    out["presets"] = {}
    for name, config in PRESETS.items():
        sps, _ = training_sps(config, r)
        t = time.perf_counter()
        jax.jit(make_train(config)).lower(jax.random.key(0)).compile()
        compile_s = time.perf_counter() - t  # the whole default-length run
        flops = flops_per_step(config)
        out["presets"][name] = {
            "num_envs": config.num_envs,
            "rollout_length": config.rollout_length,
            "sps": sps,
            "compile_s": compile_s,
            "flops_per_step": flops,
            "gflops": sps * flops / 1e9,
        }
        log(
            f"{name}: {sps:,.0f} steps/s, compile {compile_s:.1f} s, "
            f"{flops / 1e3:.0f} kFLOP/step, {sps * flops / 1e9:.1f} GFLOP/s"
        )
    out["num_envs"] = {}
    for name, config in PRESETS.items():
        rows = {}
        for n in NUM_ENVS:
            rows[n] = training_sps(config.replace(num_envs=n, rollout_length=32), r)[0]
            log(f"{name} num_envs={n} x 32 steps: {rows[n]:,.0f} steps/s")
        out["num_envs"][name] = rows
    out["fixed_batch"] = {}
    for name, config in PRESETS.items():
        batch_rows: dict[str, float] = {}
        for n, t_len in FIXED_BATCH:
            cfg = config.replace(num_envs=n, rollout_length=t_len)
            sps = batch_rows[f"{n}x{t_len}"] = training_sps(cfg, r)[0]
            log(f"{name} {n} envs x {t_len} steps: {sps:,.0f} steps/s")
        out["fixed_batch"][name] = batch_rows
    out["seeds"] = {}
    for s in SEEDS:
        out["seeds"][s] = training_sps(PPOConfig(), r, num_seeds=s)[0]
        log(f"tutorial, {s} vmapped seeds: {out['seeds'][s]:,.0f} steps/s")
    out["env_ceiling"], out["rollout_ceiling"] = {}, {}
    for n in NUM_ENVS:
        steps = max(32, 65_536 // n)
        out["env_ceiling"][n] = env_ceiling_sps(n, steps, r)
        out["rollout_ceiling"][n] = rollout_ceiling_sps(n, steps, r)
        log(
            f"ceilings, {n} envs: env {out['env_ceiling'][n]:,.0f}, rollout "
            f"{out['rollout_ceiling'][n]:,.0f} steps/s"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    write_markdown(out)
    plot(out)


def write_markdown(out: dict) -> None:
    def f(x):
        return f"{x:,.0f}"

    lines = [
        "# Throughput",
        "",
        f"Written by `python benchmarks/throughput.py` on {out['machine']}, "
        f"{out['date']}. Environment steps per second of training, compile "
        f"excluded, median of {out['repeats']} runs; Pendulum-v1.",
        "",
        "| preset | layout | steps/s | compile s (whole run) | FLOP/step | GFLOP/s "
        "| share of matmul rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in out["presets"].items():
        lines.append(
            f"| {name} | {p['num_envs']} x {p['rollout_length']} | {f(p['sps'])} | "
            f"{p['compile_s']:.1f} | {p['flops_per_step'] / 1e3:.0f}k | "
            f"{p['gflops']:.1f} | {p['gflops'] / out['matmul_gflops']:.0%} |"
        )
    lines += [
        "",
        f"float32 matmul (1024x1024) on this device: "
        f"{out['matmul_gflops']:.1f} GFLOP/s.",
        "",
        "Across num_envs, rollout_length 32 (steps/s):",
        "",
        "| num_envs | " + " | ".join(out["num_envs"]) + " | env only | rollout only |",
        "|---" * (len(out["num_envs"]) + 3) + "|",
    ]
    for n in NUM_ENVS:
        cells = " | ".join(f(out["num_envs"][name][n]) for name in out["num_envs"])
        lines.append(
            f"| {n} | {cells} | {f(out['env_ceiling'][n])} | "
            f"{f(out['rollout_ceiling'][n])} |"
        )
    lines += [
        "",
        "Fixed batch of 4096 steps per iteration (steps/s):",
        "",
        "| envs x steps | " + " | ".join(out["fixed_batch"]) + " |",
        "|---" * (len(out["fixed_batch"]) + 1) + "|",
    ]
    for layout in next(iter(out["fixed_batch"].values())):
        cells = " | ".join(f(out["fixed_batch"][k][layout]) for k in out["fixed_batch"])
        lines.append(f"| {layout} | {cells} |")
    lines += [
        "",
        "Vmapped seeds, tutorial preset (steps/s of all seeds together):",
        "",
        "| seeds | steps/s |",
        "|---|---|",
        *(f"| {s} | {f(v)} |" for s, v in out["seeds"].items()),
        "",
    ]
    (RESULTS / "throughput.md").write_text("\n".join(lines))


def plot(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in out["num_envs"].items():
        ax.plot(list(rows), list(rows.values()), "o-", label=f"training: {name}")
    for key, label in (
        ("rollout_ceiling", "rollout only"),
        ("env_ceiling", "env only"),
    ):
        rows = out[key]
        ax.plot(list(rows), list(rows.values()), "--", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("num_envs (rollout_length 32 for training)")
    ax.set_ylabel("environment steps / second")
    ax.set_title(f"ppo_jax throughput on Pendulum-v1\n{out['machine']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
