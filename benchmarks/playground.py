"""MuJoCo Playground throughput: env-only ceiling beside training steps/s.

    pip install -e '.[playground]'
    python benchmarks/playground.py              # 6 min on 2 cores, +20 for CheetahRun
    python benchmarks/playground.py --tasks CartpoleBalance --num-envs 128
    python benchmarks/playground.py --tasks CheetahRun    # replaces its row only

For each DM Control Suite task, with the ``tuned`` preset's layout (128 envs x
32 steps unless --num-envs is given), physics ``impl='jax'`` on a CPU:

- env only: the adapted env (:class:`ppo_jax.envs.state_api.StateEnv`: time
  limit, auto-reset, action repeat) stepped with uniformly random actions in a
  ``lax.scan``, vmapped over the envs: the ceiling for training;
- training: the whole PPO iteration (rollout with the actor, GAE, 4 epochs x 4
  minibatches), a compiled chunk of iterations.

Steps/s are medians of --repeats timed calls after one warm-up, compile
excluded and reported apart. Writes benchmarks/results/playground.md and .json
(learning results of these tasks: ``benchmarks/learning.py --envs
playground/CartpoleBalance ...``, in learning.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, random_action_steps, reset_then, timed  # noqa: E402

from ppo_jax import build_pipeline  # noqa: E402
from ppo_jax.algo.ppo import make_chunk  # noqa: E402
from ppo_jax.envs import preset_config  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TASKS = (
    "CartpoleBalance",
    "CartpoleSwingup",
    "PendulumSwingup",
    "AcrobotSwingup",
    "PointMass",
    "ReacherEasy",
    "CheetahRun",
)


def measure(task: str, num_envs: int | None, repeats: int) -> dict:
    overrides = {} if num_envs is None else {"num_envs": num_envs}
    config = preset_config("tuned", env_name=f"playground/{task}", **overrides)
    pipeline = build_pipeline(config)
    env, params, spec = pipeline.setup
    n, steps = config.num_envs, config.rollout_length

    env_only = reset_then(
        env.reset,
        params,
        n,
        random_action_steps(
            env.step,
            params,
            n,
            steps * 4,
            lambda k: jax.random.uniform(k, (n, spec.action_dim), minval=-1, maxval=1),
        ),
    )

    env_compile_s, env_s = timed(
        env_only, jax.random.key(0), repeats=repeats, warmup=True
    )
    hp = config.hyperparams()
    runner = jax.jit(pipeline.init)(jax.random.key(0), hp)
    chunk = make_chunk(pipeline, 4)
    train_compile_s, train_s = timed(chunk, runner, hp, repeats=repeats, warmup=True)
    # The env-only run includes its reset of all envs (once, small against
    # 4 x rollout_length steps).
    return {
        "task": task,
        "num_envs": n,
        "rollout_length": steps,
        "env_sps": n * steps * 4 / env_s,
        "train_sps": 4 * config.batch_size / train_s,
        "env_compile_s": env_compile_s,
        "train_compile_s": train_compile_s,
    }


def write(out: dict) -> None:
    lines = [
        "# MuJoCo Playground throughput",
        "",
        f"Written by `python benchmarks/playground.py` on {out['machine']}, "
        f"{out['date']}. Environment steps per second, compile excluded, median "
        f"of {out['repeats']} timed calls; `tuned` preset layout, impl='jax'.",
        "",
        "| task | envs x steps | env only (random actions) | training | training / "
        "env only | compile s (env / training) |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["tasks"]:
        lines.append(
            f"| {r['task']} | {r['num_envs']} x {r['rollout_length']} | "
            f"{r['env_sps']:,.0f} | {r['train_sps']:,.0f} | "
            f"{r['train_sps'] / r['env_sps']:.0%} | "
            f"{r['env_compile_s']:.1f} / {r['train_compile_s']:.1f} |"
        )
    (RESULTS / "playground.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "playground.json").write_text(json.dumps(out, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--num-envs", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    out = {
        "machine": machine(),
        "date": str(date.today()),
        "repeats": args.repeats,
        "tasks": [],
    }
    previous = RESULTS / "playground.json"
    if previous.exists():
        # Rows of other tasks are kept when measured on this same machine with
        # the same repeats, so one slow task can be (re)measured alone.
        old = json.loads(previous.read_text())
        if (old["machine"], old["repeats"]) == (out["machine"], out["repeats"]):
            out["tasks"] = [r for r in old["tasks"] if r["task"] not in args.tasks]
    for task in args.tasks:
        print(f"{task}: compiling and timing ...", flush=True)
        r = measure(task, args.num_envs, args.repeats)
        out["tasks"].append(r)
        print(
            f"{task}: env only {r['env_sps']:,.0f} steps/s, training "
            f"{r['train_sps']:,.0f} steps/s (compile {r['env_compile_s']:.1f} / "
            f"{r['train_compile_s']:.1f} s)",
            flush=True,
        )
        write(out)


if __name__ == "__main__":
    main()
