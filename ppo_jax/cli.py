"""Command lines: ``python -m ppo_jax.train`` and ``python -m ppo_jax.evaluate``.

Argument parsing and entry points; the training loop itself is
``ppo_jax.host_loop``. Bad input ends with one sentence on stderr and exit
code 2 (``--debug`` shows the traceback); see ``host_loop`` for codes 3 and 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ppo_jax.checkpoint import CheckpointError
from ppo_jax.config import BOOL_FIELDS, PRESETS, ConfigError, PPOConfig
from ppo_jax.experiment import RunSpec, parse_sweep
from ppo_jax.host_loop import RunDirError, run_training

EXIT_USAGE = 2

FIELD_HELP = {
    "env_name": "gymnax environment, e.g. Pendulum-v1 or CartPole-v1",
    "max_episode_steps": "episode time limit replacing the env's ('none': env default)",
    "num_envs": "parallel environments",
    "rollout_length": "steps per environment per iteration",
    "total_timesteps": "environment steps to simulate (rounded up to whole iterations)",
    "lr": "Adam learning rate of actor and critic",
    "gamma": "discount factor",
    "clip_eps": "PPO clip range epsilon",
    "update_epochs": "epochs per iteration (tutorial: n_updates_per_iteration)",
    "num_minibatches": "minibatches per epoch (1 = the whole batch)",
    "advantage": "rtg (rewards-to-go minus V, tutorial) or gae",
    "gae_lambda": "GAE lambda (advantage gae)",
    "ent_coef": "entropy bonus weight",
    "vf_coef": "value loss weight",
    "optimizer": "separate (an Adam for actor and critic, tutorial) or joint",
    "max_grad_norm": "global-norm gradient clipping ('none': off)",
    "adam_eps": "Adam epsilon",
    "anneal_lr": "decay the learning rate linearly to 0",
    "target_kl": "skip the remaining epochs once the KL exceeds this ('none': off)",
    "clip_value": "clip value updates to clip_eps around the rollout's values",
    "policy_std": "Gaussian std: fixed or learned; none for discrete actions",
    "action_variance": "fixed variance of the Gaussian policy (tutorial: 0.5)",
    "init_log_std": "initial log-std of the learned Gaussian std",
    "clip_actions": "clip actions to the env's bounds before stepping",
    "hidden_sizes": "hidden layer widths, comma-separated, e.g. 64,64",
    "activation": "hidden activation: relu or tanh",
    "ortho_init": "orthogonal initialization (else PyTorch's nn.Linear init)",
    "normalize_obs": "normalize observations by running mean and std",
    "normalize_reward": "scale rewards by the running std of the return",
    "bootstrap_truncation": "bootstrap from V(final obs) at time limits",
    "save_freq": "iterations between progress reports and checkpoints",
    "seed": "PRNG seed",
}


def _int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _float_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _str_or_none(text: str) -> str | None:
    return None if text.lower() == "none" else text


# Fields that accept "none" on the command line.
_NONE_PARSERS = {
    "max_episode_steps": _int_or_none,
    "max_grad_norm": _float_or_none,
    "target_kl": _float_or_none,
    "policy_std": _str_or_none,
}
_UNSET = object()  # default of every flag: "take the preset's value"


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not an integer >= 1")
    return value


def _field_parser(field: dataclasses.Field):
    if field.name in _NONE_PARSERS:
        return _NONE_PARSERS[field.name]
    if field.name == "hidden_sizes":
        return _int_tuple
    return type(field.default)  # int, float or str


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ppo_jax.train",
        description="Train PPO on a gymnax environment; every config field is a flag.",
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="named hyperparameters, then the env's overrides (default: tutorial)",
    )
    p.add_argument(
        "--env", dest="env_name", default=_UNSET, help=FIELD_HELP["env_name"]
    )
    for field in dataclasses.fields(PPOConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{FIELD_HELP[field.name]} (default: the preset's)"
        if field.name in BOOL_FIELDS:
            p.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=_UNSET,
                help=help_text,
            )
            continue
        p.add_argument(
            flag,
            dest=field.name,
            type=_field_parser(field),
            default=_UNSET,
            metavar=field.name.upper(),
            help=help_text,
        )
    p.add_argument(
        "--num-seeds",
        type=_positive_int,
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


def given_fields(args: argparse.Namespace) -> dict:
    """The config fields set on the command line (flags left out are absent)."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PPOConfig)
        if getattr(args, f.name) is not _UNSET
    }


def config_from_args(args: argparse.Namespace) -> PPOConfig:
    preset = args.preset or "tutorial"
    return PPOConfig.from_preset(preset, **given_fields(args)).validate()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def train_main(argv: list[str] | None = None) -> int:
    parser = build_train_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        extra = given_fields(args) or args.preset or args.sweep or args.run_dir
        if extra or args.num_seeds != 1:
            return _fail(
                "--resume continues a run with its own settings: give no config "
                "flag, --preset, --sweep, --num-seeds or --run-dir with it"
            )
    try:
        return _train(args)
    except (ConfigError, CheckpointError, RunDirError) as e:
        if args.debug:
            raise
        return _fail(str(e))


def enable_compilation_cache() -> None:
    """Let repeated CLI runs of the same program skip XLA compilation.

    The cache lives in ``$PPO_JAX_CACHE_DIR`` (default ``~/.cache/ppo_jax``);
    set it to ``off`` to disable. Only the command lines do this: library users
    keep their own JAX settings.
    """
    import jax

    cache_dir = os.environ.get("PPO_JAX_CACHE_DIR", "~/.cache/ppo_jax")
    if cache_dir.lower() in ("off", "0", "none", ""):
        return
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))


def _train(args: argparse.Namespace) -> int:
    enable_compilation_cache()
    if args.resume is not None:
        return run_training(None, None, resume=args.resume, quiet=args.quiet)
    config = config_from_args(args)
    spec = RunSpec(config, args.num_seeds, parse_sweep(args.sweep))
    return run_training(spec, args.run_dir, overwrite=args.overwrite, quiet=args.quiet)


def build_evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ppo_jax.evaluate",
        description="Run a trained policy deterministically (its mean action).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "run_dir", type=Path, help="a run directory written by ppo_jax.train"
    )
    p.add_argument("--episodes", type=_positive_int, default=10)
    p.add_argument(
        "--run",
        type=int,
        default=0,
        help="which run of a multi-seed or sweep run directory (0-based)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=("gymnax", "gymnasium"),
        default="gymnax",
        help="gymnax (the training env) or gymnasium's reference env of the same "
        "name (needs the [gym] extra)",
    )
    p.add_argument(
        "--gif",
        type=Path,
        default=None,
        help="also render one deterministic episode to this GIF (gymnasium's "
        "renderer; needs the [gym] extra)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    args = build_evaluate_parser().parse_args(argv)
    try:
        from ppo_jax import evaluate
        from ppo_jax.checkpoint import load_config

        if args.backend == "gymnasium" or args.gif is not None:
            evaluate.check_gymnasium(load_config(args.run_dir))
        pipeline, runner = evaluate.load_run(args.run_dir, args.run)  # loaded once
        config = pipeline.config
        if args.backend == "gymnasium" or args.gif is not None:
            policy = evaluate.numpy_policy(pipeline, runner)
        if args.backend == "gymnasium":
            returns, lengths = evaluate.evaluate_gymnasium(
                config, policy, args.episodes, args.seed
            )
        else:
            returns, lengths = evaluate.evaluate_run(
                pipeline, runner, args.episodes, args.seed
            )
        if args.gif is not None:
            gif_return, gif_length = evaluate.render_gif(
                config, policy, args.gif, args.seed
            )
    except (ConfigError, CheckpointError) as e:
        if args.debug:
            raise
        return _fail(str(e))
    for i, (ret, length) in enumerate(zip(returns, lengths, strict=True), start=1):
        print(f"episode {i}: length={int(length)} return={float(ret):.2f}")
    if args.gif is not None:
        print(
            f"gif: {args.gif} (gymnasium episode, length={gif_length} "
            f"return={gif_return:.2f})"
        )
    print(
        f"mean_return={returns.mean():.2f} std_return={returns.std():.2f} "
        f"episodes={len(returns)}"
    )
    return 0
