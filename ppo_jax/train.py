"""``python -m ppo_jax.train``: train PPO from the command line.

Every config field is a flag (``--help`` lists them, from the schema); the run
itself is :func:`ppo_jax.host_loop.run_training`. Exit codes: 0 done, 2 bad
input (one sentence, before anything compiles), 3 diverged, 130 stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax import cli
from ppo_jax.config import PRESETS, PPOConfig
from ppo_jax.host_loop import run_training
from ppo_jax.runspec import RunSpec, parse_sweep


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ppo_jax.train",
        description="Train PPO on an environment; every config field is a flag.",
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="named hyperparameters, then the env's overrides (default: tutorial)",
    )
    cli.add_config_flags(p)
    p.add_argument(
        "--num-seeds",
        type=cli.positive_int,
        default=1,
        help="independent runs with seeds SEED, SEED+1, ... (vmapped, one compile)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        metavar="FIELD=V1,V2,...",
        help="sweep a hyperparameter that does not change shapes (lr, gamma, "
        "clip_eps, ent_coef, gae_lambda, ...); repeat for a grid; vmapped with "
        "the seeds in one compile",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a stopped run from its checkpoint (its own config is used)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output directory (default: runs/ENV-DATE-TIME)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a run directory that already holds a run",
    )
    p.add_argument("--quiet", action="store_true", help="no per-iteration lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def config_from_args(args: argparse.Namespace) -> PPOConfig:
    preset = args.preset or "tutorial"
    return PPOConfig.from_preset(preset, **cli.given_fields(args)).validate()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume is not None:
        extra = cli.given_fields(args) or args.preset or args.sweep or args.run_dir
        if extra or args.num_seeds != 1:
            return cli.fail(
                "--resume continues a run with its own settings: give no config "
                "flag, --preset, --sweep, --num-seeds or --run-dir with it"
            )

    def train() -> int:
        cli.enable_compilation_cache()
        if args.resume is not None:
            return run_training(None, None, resume=args.resume, quiet=args.quiet)
        spec = RunSpec(config_from_args(args), args.num_seeds, parse_sweep(args.sweep))
        return run_training(
            spec, args.run_dir, overwrite=args.overwrite, quiet=args.quiet
        )

    return cli.run_guarded(train, args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
