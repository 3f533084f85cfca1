"""Command lines: ``python -m ppo_jax.train`` and ``python -m ppo_jax.evaluate``.

Training is a host loop over one compiled chunk of ``save_freq`` iterations:
after each chunk the per-iteration summaries are printed, rows appended to
``metrics.csv`` and the whole runner state checkpointed. Bad input ends with
one sentence on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from ppo_jax.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    save_checkpoint,
    save_config,
)
from ppo_jax.config import PRESETS, ConfigError, PPOConfig

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

FIELD_HELP = {
    "env_name": "gymnax environment (continuous actions), e.g. Pendulum-v1",
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


class RunDirError(RuntimeError):
    """The run directory cannot be used."""


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
    p.add_argument("--preset", default="tutorial", choices=sorted(PRESETS))
    p.add_argument(
        "--env", dest="env_name", default=_UNSET, help=FIELD_HELP["env_name"]
    )
    for field in dataclasses.fields(PPOConfig):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{FIELD_HELP[field.name]} (default: the preset's)"
        if isinstance(field.default, bool):
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
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(PPOConfig)
        if getattr(args, f.name) is not _UNSET
    }
    return PPOConfig.from_preset(args.preset, **overrides).validate()


def prepare_run_dir(run_dir: Path | None, env_name: str, overwrite: bool) -> Path:
    if run_dir is None:
        run_dir = Path("runs") / f"{env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(
            f"run directory {str(run_dir)!r} exists and is not a directory"
        )
    if (run_dir / CHECKPOINT_FILE).exists() and not overwrite:
        raise RunDirError(
            f"run directory {str(run_dir)!r} already holds a run; "
            "pass --overwrite to replace it or choose another --run-dir"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable ({e.strerror})"
        ) from e
    return run_dir


class GracefulStop:
    """Turn the first Ctrl-C (or SIGTERM) into a request to stop at a boundary.

    The training loop checks ``requested`` after each chunk, so the run ends
    with metrics and checkpoint of the same iteration. A second Ctrl-C aborts
    at once (the last checkpoint on disk stays valid: writes are atomic).
    """

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping after the current chunk (Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def train_main(argv: list[str] | None = None) -> int:
    args = build_train_parser().parse_args(argv)
    try:
        return _train(args)
    except (ConfigError, CheckpointError, RunDirError) as e:
        if args.debug:
            raise
        return _fail(str(e))


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    # Validate the env and build the pure pieces before anything compiles.
    import jax
    import numpy as np
    from tqdm import tqdm

    from ppo_jax.reporting import (
        MetricsWriter,
        format_iteration,
        metrics_rows,
        plot_learning_curve,
        recent_mean_return,
    )
    from ppo_jax.train import build_pipeline, make_chunk

    pipeline = build_pipeline(config)
    run_dir = prepare_run_dir(args.run_dir, config.env_name, args.overwrite)
    save_config(run_dir, config)
    say = (
        (lambda *_: None) if args.quiet else (lambda s: tqdm.write(s, file=sys.stdout))
    )

    chunk_len = min(config.save_freq, config.num_iterations)
    num_chunks = math.ceil(config.num_iterations / chunk_len)
    print(
        f"ppo_jax: {config.env_name}, preset {args.preset}, {config.num_envs} envs x "
        f"{config.rollout_length} steps = {config.batch_size} steps/iteration, "
        f"{config.num_iterations} iterations, run dir {run_dir}",
        flush=True,
    )

    # Compile once, ahead of time, so compile time is measured on its own.
    hp = config.hyperparams()
    key = jax.random.key(config.seed)
    t0 = time.perf_counter()
    init = jax.jit(pipeline.init).lower(key, hp).compile()
    runner_shape = jax.eval_shape(pipeline.init, key, hp)
    run_chunk = (
        jax.jit(make_chunk(pipeline, chunk_len)).lower(runner_shape, hp).compile()
    )
    compile_s = time.perf_counter() - t0
    print(f"compiled in {compile_s:.2f} s", flush=True)

    runner = init(key, hp)
    save_checkpoint(run_dir, config, runner)  # iteration 0: always a good one
    writer = MetricsWriter(run_dir)
    rows: list[dict] = []
    train_s = 0.0
    diverged_at = None
    bar = tqdm(total=config.num_iterations, unit="it", disable=not sys.stderr.isatty())
    stop = GracefulStop()
    try:
        with stop:
            for _ in range(num_chunks):
                if stop.requested:
                    break
                t = time.perf_counter()
                new_runner, metrics = run_chunk(runner, hp)
                metrics = jax.device_get(metrics)  # waits for the chunk
                keep = min(chunk_len, config.num_iterations - len(rows))
                finite = np.asarray(metrics.all_finite[:keep])
                if not finite.all():
                    # Keep metrics and checkpoint of the last good chunk boundary.
                    diverged_at = len(rows) + int(np.argmin(finite)) + 1
                    break
                runner = new_runner
                chunk_rows = metrics_rows(
                    metrics, keep, (time.perf_counter() - t) / keep
                )
                writer.write(chunk_rows)
                save_checkpoint(run_dir, config, runner)
                rows += chunk_rows
                train_s += time.perf_counter() - t
                for row in chunk_rows:
                    say(format_iteration(row))
                bar.update(keep)
                bar.set_postfix(ret=f"{chunk_rows[-1]['mean_return']:.1f}")
    except KeyboardInterrupt:  # a second Ctrl-C: abort mid-chunk
        stop.requested = True
    finally:
        bar.close()
        writer.close()

    if rows:
        plot_learning_curve(run_dir, f"ppo_jax {args.preset} on {config.env_name}")
    timesteps = rows[-1]["timesteps"] if rows else 0
    sps = timesteps / train_s if train_s > 0 else 0.0
    if diverged_at is not None:
        print(
            f"error: training diverged: non-finite loss or parameters at iteration "
            f"{diverged_at}; stopped, keeping metrics and the checkpoint of "
            f"iteration {len(rows)} (the last finite chunk) in {run_dir}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if stop.requested:
        print(
            f"stopped after iteration {len(rows)} of {config.num_iterations}: "
            f"metrics and checkpoint up to there are in {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"final: timesteps={timesteps} mean_return={recent_mean_return(rows):.2f} "
        f"sps={sps:.0f} compile_s={compile_s:.2f}",
        flush=True,
    )
    return 0


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
        from ppo_jax.evaluate import evaluate_gymnasium, evaluate_run, render_gif

        if args.backend == "gymnasium":
            returns, lengths = evaluate_gymnasium(
                args.run_dir, args.episodes, args.seed
            )
        else:
            returns, lengths = evaluate_run(args.run_dir, args.episodes, args.seed)
        if args.gif is not None:
            gif_return, gif_length = render_gif(args.run_dir, args.gif, args.seed)
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
