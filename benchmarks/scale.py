"""Cost of the CLI's chunked host loop, and throughput with vmapped seeds.

    python benchmarks/scale.py            # about 4 minutes on a 2-core CPU

1. Chunking overhead: the `tutorial` preset for 1M steps as one compiled scan
   (`make_train`) against the CLI (`python -m ppo_jax.train --quiet`: chunks of
   `save_freq` iterations with metrics, CSV rows and a checkpoint after each).
   Steps/second of both, compile excluded; the CLI's figure is its own `sps=`.
2. Seeds: steps/second of `jax.vmap(make_train(config))` for 1, 4, 16 and 64
   seeds (all seeds' steps counted), 20 iterations of the tutorial preset each.

Medians of --repeats runs, alternating the two sides. Writes
benchmarks/results/scale.md and scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from common import compile_and_time, machine  # noqa: E402

from ppo_jax import PPOConfig, make_train  # noqa: E402
from ppo_jax.train import main as train_main  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def single_scan_sps(config: PPOConfig) -> tuple[float, float]:
    train = make_train(config)
    _, compile_s, run_s = compile_and_time(train, jax.random.key(0))
    return config.num_iterations * config.batch_size / run_s, compile_s


def cli_sps(total_timesteps: int) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(io.StringIO()) as out,
    ):
        code = train_main(
            [
                "--quiet",
                "--total-timesteps",
                str(total_timesteps),
                "--run-dir",
                tmp + "/r",
            ]
        )
    assert code == 0, out.getvalue()
    final = re.search(r"sps=(\d+) compile_s=([\d.]+)", out.getvalue())
    assert final is not None, out.getvalue()
    return float(final.group(1)), float(final.group(2))


def seeds_sps(num_seeds: int, iterations: int) -> tuple[float, float]:
    config = PPOConfig(total_timesteps=iterations * PPOConfig().batch_size)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    _, compile_s, run_s = compile_and_time(jax.vmap(make_train(config)), keys)
    return num_seeds * config.num_iterations * config.batch_size / run_s, compile_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--seed-iterations", type=int, default=20)
    args = p.parse_args()

    config = PPOConfig(total_timesteps=args.total_timesteps)
    scan, cli = [], []
    for _ in range(args.repeats):
        scan.append(single_scan_sps(config)[0])
        cli.append(cli_sps(args.total_timesteps)[0])
    scan_sps, cli_sps_ = statistics.median(scan), statistics.median(cli)
    overhead = 1 - cli_sps_ / scan_sps
    print(
        f"one scan: {scan_sps:,.0f} steps/s; CLI chunks of {config.save_freq}: "
        f"{cli_sps_:,.0f} steps/s; overhead {overhead:.1%}",
        flush=True,
    )
    seeds = {}
    for n in (1, 4, 16, 64):
        runs = [seeds_sps(n, args.seed_iterations)[0] for _ in range(args.repeats)]
        seeds[n] = statistics.median(runs)
        print(f"{n:>3} seeds: {seeds[n]:,.0f} steps/s (all seeds)", flush=True)

    result = {
        "machine": machine(),
        "date": str(date.today()),
        "repeats": args.repeats,
        "total_timesteps": args.total_timesteps,
        "single_scan_sps": scan_sps,
        "cli_chunked_sps": cli_sps_,
        "chunk_iterations": config.save_freq,
        "overhead": overhead,
        "seed_iterations": args.seed_iterations,
        "seeds_sps": seeds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Scale: chunking overhead and vmapped seeds",
        "",
        f"Written by `python benchmarks/scale.py` on {result['machine']}, "
        f"{result['date']}; medians of {args.repeats} runs; `tutorial` preset "
        "(11 envs x 200 steps, 10 full-batch epochs).",
        "",
        f"| {args.total_timesteps:,} steps | steps/s |",
        "|---|---|",
        f"| one compiled scan (`make_train`) | {scan_sps:,.0f} |",
        f"| CLI, chunks of {config.save_freq} iterations + CSV + checkpoint "
        f"| {cli_sps_:,.0f} |",
        f"| overhead of chunking | {overhead:.1%} |",
        "",
        f"| vmapped seeds ({args.seed_iterations} iterations each) "
        "| steps/s, all seeds |",
        "|---|---|",
        *(f"| {n} | {v:,.0f} |" for n, v in seeds.items()),
        "",
    ]
    (RESULTS / "scale.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
