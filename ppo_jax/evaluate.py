"""``python -m ppo_jax.evaluate RUN_DIR``: run a trained policy deterministically.

Prints ``episode i: length=L return=R`` per episode and a last line
``mean_return=X std_return=Y episodes=N``; the library side is
:mod:`ppo_jax.analysis.evaluation`. Bad input: one sentence, exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax import _cli


def build_parser() -> argparse.ArgumentParser:
    p = _cli.OneLineParser(
        prog="python -m ppo_jax.evaluate",
        description="Run a trained policy: its mode (the mean action, or the most "
        "likely discrete one) or samples of it, as the run evaluated (eval_actions).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _cli.add_run_arguments(p)
    p.add_argument("--episodes", type=_cli.positive_int, default=10)
    p.add_argument(
        "--seed",
        type=_cli.seed,
        default=0,
        help="PRNG seed of the episodes (0 to 2**32 - 1)",
    )
    p.add_argument(
        "--actions",
        choices=("mode", "sample"),
        default=None,
        help="the policy's mode (deterministic) or a sample at each step "
        "(default: the run's eval_actions, mode unless it trained with sample)",
    )
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
        help="also render one deterministic episode to this GIF: gymnasium's "
        "renderer for gymnax envs (needs the [gym] extra), MuJoCo's for "
        "playground/ and brax/ (needs headless OpenGL: MUJOCO_GL=egl or osmesa)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return _cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ppo_jax.analysis import evaluation
    from ppo_jax.analysis.videos import render_episode, renderer_name
    from ppo_jax.config.schema import ConfigError
    from ppo_jax.run.rundir import load_config
    from ppo_jax.run.signals import check_stop

    run_dir = Path(args.run_dir)
    saved = load_config(run_dir)  # read once for the checks before loading
    actions = args.actions or saved.eval_actions
    if args.backend == "gymnasium":
        evaluation.check_gymnasium(saved)
        if actions == "sample":
            raise ConfigError(
                "backend",
                "gymnasium",
                "gymnax for sampled actions (gymnasium's env plays the "
                "deterministic policy only: --actions mode)",
            )
    if args.gif is not None:
        evaluation.check_gif(saved, str(args.gif))
    pipeline, runner = evaluation.load_run(run_dir, args.run)  # loaded once
    check_stop()  # a Ctrl-C while loading: stop before evaluating
    config = pipeline.config
    policy = evaluation.numpy_policy(pipeline, runner)
    if args.backend == "gymnasium":
        returns, lengths = evaluation.evaluate_gymnasium(
            config, policy, args.episodes, args.seed
        )
    else:
        hp = evaluation.run_hyperparams(run_dir, args.run)
        returns, lengths = evaluation.evaluate_run(
            pipeline, runner, args.episodes, args.seed, actions, hp
        )
    if args.gif is not None:
        gif_source = renderer_name(config)
        gif_return, gif_length = render_episode(pipeline, runner, args.gif, args.seed)
    check_stop()
    for i, (ret, length) in enumerate(zip(returns, lengths, strict=True), 1):
        print(f"episode {i}: length={int(length)} return={float(ret):.2f}")
    if args.gif is not None:
        print(
            f"gif: {args.gif} ({gif_source} episode, length={gif_length} "
            f"return={gif_return:.2f})"
        )
    print(
        f"mean_return={returns.mean():.2f} std_return={returns.std():.2f} "
        f"episodes={len(returns)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
