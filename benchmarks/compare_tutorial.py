"""Side by side, in one process: the tutorial's PyTorch code (our faithful port,
benchmarks/tutorial_torch.py) and ppo_jax's `tutorial` preset, same
hyperparameters, same CPU, one after the other.

    pip install -e '.[bench]'
    python benchmarks/compare_tutorial.py     # about 1 minute on a 2-core CPU

Prints both steps/second and their ratio, and writes
benchmarks/results/compare_tutorial.md. ppo_jax's figure excludes compilation
(reported separately); it runs `--jax-timesteps` steps, the port
`--torch-timesteps` (its speed does not depend on the run's length).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
import tutorial_torch  # noqa: E402
from common import compile_and_time, machine  # noqa: E402

from ppo_jax import PPOConfig, make_train  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--torch-timesteps", type=int, default=30_000)
    p.add_argument("--jax-timesteps", type=int, default=1_000_000)
    args = p.parse_args()

    torch_result = tutorial_torch.run(args.torch_timesteps)
    print(
        f"PyTorch tutorial port: {torch_result['steps']:,} steps, "
        f"{torch_result['sps']:,.0f} steps/s (rollout "
        f"{torch_result['rollout_s'] / torch_result['seconds']:.0%} of the time)",
        flush=True,
    )
    config = PPOConfig(total_timesteps=args.jax_timesteps)
    _, compile_s, run_s = compile_and_time(make_train(config), jax.random.key(0))
    steps = config.num_iterations * config.batch_size
    jax_sps = steps / run_s
    ratio = jax_sps / torch_result["sps"]
    print(
        f"ppo_jax tutorial preset: {steps:,} steps, {jax_sps:,.0f} steps/s "
        f"(compile {compile_s:.1f} s)\nratio: {ratio:.1f}x",
        flush=True,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_tutorial.md").write_text(
        "# The tutorial in PyTorch vs ppo_jax\n\n"
        "Written by `python benchmarks/compare_tutorial.py` on "
        f"{machine()}, torch {tutorial_torch.torch.__version__}, {date.today()}. "
        "Same hyperparameters (Pendulum-v1, gamma 0.99, lr 3e-4, clip 0.2, 10 "
        "full-batch epochs, 64-64 ReLU, fixed variance 0.5), one process, one "
        "after the other.\n\n"
        "| implementation | steps | steps/s | notes |\n|---|---|---|---|\n"
        f"| PyTorch port of the tutorial | {torch_result['steps']:,} | "
        f"{torch_result['sps']:,.0f} | rollout "
        f"{torch_result['rollout_s'] / torch_result['seconds']:.0%} of the time |\n"
        f"| ppo_jax `tutorial` preset | {steps:,} | {jax_sps:,.0f} | "
        f"compile {compile_s:.1f} s excluded |\n"
        f"| **ratio** | | **{ratio:.1f}x** | |\n"
    )


if __name__ == "__main__":
    main()
