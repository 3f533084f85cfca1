"""``python -m ppo_jax.train``: train PPO from the command line.

Every config field is a flag (``--help`` lists them, from the schema); the run
itself is :func:`ppo_jax.run.host_loop.run_training`. Exit codes: 0 done, 2 bad
input (one sentence, before anything compiles), 3 diverged, 4 a write failed
(full disk, ...), 130 stopped by Ctrl-C or SIGTERM.

Heavy imports (jax) happen inside :func:`main`, after the signal handling of
:func:`ppo_jax._cli.entry_point` is in place.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ppo_jax import _cli


def build_parser() -> argparse.ArgumentParser:
    p = _cli.OneLineParser(
        prog="python -m ppo_jax.train",
        description="Train PPO on an environment; every config field is a flag.",
    )
    _cli.add_preset_flags(p)
    p.add_argument(
        "--print-config",
        nargs="?",
        const="auto",
        choices=["auto", "yaml", "toml", "json"],
        default=None,
        metavar="FORMAT",
        help="print the resolved config (yaml, toml or json; default: the "
        "--config file's format, else yaml) and exit without training",
    )
    _cli.add_config_flags(p)
    p.add_argument(
        "--num-seeds",
        type=_cli.positive_int,
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
    _cli.add_run_dir_flags(
        p,
        resume_help="continue a stopped run from its checkpoint (its own config "
        "is used)",
        run_dir_help="output directory (default: runs/ENV-DATE-TIME)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run a run directory holds (its files only)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-iteration lines")
    p.add_argument(
        "--gif-every",
        type=_cli.positive_int,
        default=None,
        metavar="N",
        help="while training, draw a deterministic episode of the policy (the "
        "first run's) every N iterations, at the next chunk boundary, to "
        "RUN_DIR/videos/ and to the loggers as video: gymnasium's renderer for "
        "gymnax envs, MuJoCo's for playground/ and brax/",
    )
    p.add_argument(
        "--logger",
        action="append",
        choices=["csv", "tensorboard", "wandb"],
        default=[],
        help="where metrics go besides metrics.csv (always written): tensorboard "
        "(RUN_DIR/tensorboard/), wandb (offline unless configured); repeatable",
    )
    p.add_argument(
        "--wandb-project", default="ppo_jax", help="wandb project (--logger wandb)"
    )
    p.add_argument(
        "--wandb-name",
        default=None,
        help="wandb run name and group (default: the run directory's name)",
    )
    p.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="one run over several processes (hosts): process 0's address, "
        "with --num-processes and --process-id; every process runs the same "
        "command, process 0 writes the run directory",
    )
    p.add_argument(
        "--num-processes",
        type=_cli.positive_int,
        default=1,
        help="processes of the run (--coordinator)",
    )
    p.add_argument(
        "--process-id",
        type=int,
        default=0,
        help="this process's number, 0 to --num-processes - 1 (--coordinator)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return _cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ppo_jax.config.files import dump_config, file_format, read_config_file
    from ppo_jax.config.runspec import RunSpec, parse_sweep
    from ppo_jax.envs import preset_config
    from ppo_jax.run.host_loop import run_training
    from ppo_jax.run.loggers import LoggerSpec
    from ppo_jax.run.rundir import load_config

    if args.coordinator is None and (args.num_processes != 1 or args.process_id):
        return _cli.fail("--num-processes and --process-id need --coordinator")
    if args.coordinator is not None:
        from ppo_jax.run import distributed

        distributed.check_arguments(
            args.coordinator, args.num_processes, args.process_id
        )
        if args.process_id != 0:  # one process speaks (process 0); errors still do
            silence_stdout()
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    if args.resume is not None:
        extra = _cli.given_fields(args) or args.preset or args.sweep or args.run_dir
        extra = extra or args.config or args.logger
        if extra or args.num_seeds != 1:
            return _cli.fail(
                "--resume continues a run with its own settings: give no config "
                "flag, --config, --preset, --sweep, --num-seeds, --logger or "
                "--run-dir with it"
            )
    if args.gif_every is not None and args.coordinator is not None:
        return _cli.fail("--gif-every runs with one process only (no --coordinator)")
    if args.resume is not None:
        config = load_config(Path(args.resume))
    else:
        file_preset, file_fields = (
            read_config_file(args.config) if args.config else (None, {})
        )
        preset = args.preset or file_preset or "tutorial"
        fields = {**file_fields, **_cli.given_fields(args)}
        config = preset_config(preset, **fields).validate()
    if args.print_config is not None:
        fmt = args.print_config
        if fmt == "auto":
            fmt = file_format(Path(args.config)) if args.config else "yaml"
        print(dump_config(config, fmt), end="")
        return 0
    on_policy = []
    if args.gif_every is not None:
        from ppo_jax.analysis.videos import check_gif_every, gif_every

        check_gif_every(config, args.gif_every)
        on_policy.append(gif_every(args.gif_every, seed=config.seed))
    _cli.enable_compilation_cache()
    if args.resume is not None:
        code = run_training(
            None, None, resume=Path(args.resume), quiet=args.quiet, on_policy=on_policy
        )
        return _leave(args, code)
    spec = RunSpec(config, args.num_seeds, parse_sweep(args.sweep))
    loggers = LoggerSpec(tuple(args.logger), args.wandb_project, args.wandb_name)
    run_dir = None if args.run_dir is None else Path(args.run_dir)
    code = run_training(
        spec, run_dir, overwrite=args.overwrite, quiet=args.quiet, loggers=loggers,
        on_policy=on_policy,
    )  # fmt: skip
    return _leave(args, code)


def _leave(args: argparse.Namespace, code: int) -> int:
    """With several processes, a run that ended well says goodbye to the
    others (any other end is a lost peer to them: they stop too)."""
    if args.coordinator is not None and code == 0:
        from ppo_jax.run import distributed

        distributed.goodbye()
    return code


def silence_stdout() -> None:
    """Send this process's standard output, Python's and native libraries'
    (gloo prints there), to the null device."""
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
