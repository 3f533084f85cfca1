"""What evaluation inside the compiled run (``eval_every``) costs in speed.

    python benchmarks/evaluation.py        # about 5 minutes on a 2-core CPU

For each case, the compiled chunk the command line runs (``Experiment``:
single runs, and vmapped seeds, whose evaluations are a branch taken only at
due iterations) is timed with evaluations off and on, alternately, and the
median steps/s of ``--repeats`` runs is reported with the ratio. Training
steps only are counted (the evaluation episodes' steps are the cost).

Writes benchmarks/results/evaluation.json and evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import NamedTuple

import jax

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from ppo_jax import PPOConfig, RunSpec, build_pipeline  # noqa: E402
from ppo_jax.config.schema import ConfigError  # noqa: E402
from ppo_jax.run.experiment import Experiment  # noqa: E402

RESULTS = Path(__file__).parent / "results"


class Case(NamedTuple):
    env: str
    seeds: int
    iterations: int  # per timed chunk
    eval_every: int


CASES = (
    Case("Pendulum-v1", 1, 40, 10),
    Case("CartPole-v1", 1, 100, 10),
    Case("CartPole-v1", 8, 40, 10),
    Case("playground/CartpoleBalance", 1, 40, 10),
)


def chunk_sps(config: PPOConfig, seeds: int, iterations: int):
    """The compiled chunk of ``iterations`` iterations; returns a function
    that times one call (training steps per second over all runs)."""
    spec = RunSpec(config.replace(total_timesteps=10**9), num_seeds=seeds)
    experiment = Experiment(spec, build_pipeline(spec.config), iterations)
    init, chunk = experiment.compile()
    runner = init(experiment.keys, experiment.hparams)
    jax.block_until_ready(chunk(runner, experiment.hparams))  # warm-up

    def once() -> float:
        t = time.perf_counter()
        jax.block_until_ready(chunk(runner, experiment.hparams))
        return seeds * iterations * config.batch_size / (time.perf_counter() - t)

    return once


def measure(case: Case, episodes: int, repeats: int) -> dict | None:
    base = PPOConfig.from_preset("tuned", env_name=case.env)
    try:
        episode_steps = build_pipeline(base).spec.max_episode_steps
    except ConfigError as e:  # an optional family that is not installed
        print(f"skip {case.env}: {e}", flush=True)
        return None
    off = chunk_sps(base, case.seeds, case.iterations)
    on_config = base.replace(eval_every=case.eval_every, eval_episodes=episodes)
    on = chunk_sps(on_config, case.seeds, case.iterations)
    times_off, times_on = [], []
    for _ in range(repeats):  # alternately: the machine's noise hits both
        times_off.append(off())
        times_on.append(on())
    sps_off, sps_on = statistics.median(times_off), statistics.median(times_on)
    row = {
        **case._asdict(),
        "batch": base.batch_size,
        "eval_episodes": episodes,
        "episode_steps": episode_steps,
        "sps_off": sps_off,
        "sps_on": sps_on,
        "ratio": sps_on / sps_off,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    rows = [r for c in CASES if (r := measure(c, args.episodes, args.repeats))]
    out = {
        "machine": machine(),
        "date": date.today().isoformat(),
        "command": "python benchmarks/evaluation.py",
        "repeats": args.repeats,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evaluation.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [
        "# The speed cost of evaluation during training",
        "",
        f"`{out['command']}` on {out['machine']}, {out['date']}; `tuned` preset, "
        f"median of {args.repeats} alternating runs of the compiled chunk. Training "
        "steps/s with `eval_every` off and on (`eval_episodes` deterministic "
        "episodes of `episode_steps` steps, vmapped, every `eval_every` iterations).",
        "",
        "| env | seeds | batch | iterations | eval_every | eval episodes x steps "
        "| steps/s off | steps/s on | on/off |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['seeds']} | {r['batch']} | {r['iterations']} | "
            f"{r['eval_every']} | {r['eval_episodes']} x {r['episode_steps']} | "
            f"{r['sps_off']:,.0f} | {r['sps_on']:,.0f} | {r['ratio']:.2f} |"
        )
    (RESULTS / "evaluation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
