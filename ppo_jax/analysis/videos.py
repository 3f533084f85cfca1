"""Episode GIFs of a run's policy: after training (``python -m ppo_jax.evaluate
--gif``) and while it trains (``python -m ppo_jax.train --gif-every N``, a
policy callback of :func:`ppo_jax.run_training`).

The renderer follows the env: MuJoCo's for ``playground/`` and ``brax/`` runs
(:mod:`ppo_jax.analysis.rendering`), gymnasium's classic-control renderer for
the gymnax envs gymnasium also has (:mod:`ppo_jax.analysis.evaluation`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ppo_jax.algo.ppo import Pipeline, RunnerState
from ppo_jax.analysis.evaluation import check_gif, render_gif
from ppo_jax.analysis.rendering import is_mujoco_run, render_mujoco_gif
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.run.callbacks import PolicyCallback, PolicySnapshot, StopRequest
from ppo_jax.run.host_policy import numpy_policy
from ppo_jax.run.rundir import RunDirError

VIDEOS_DIR = "videos"  # RUN_DIR/videos/iteration_000010.gif


def renderer_name(config: PPOConfig) -> str:
    """``"MuJoCo"`` or ``"gymnasium"``: who draws ``config``'s episodes."""
    return "MuJoCo" if is_mujoco_run(config.env_name) else "gymnasium"


def render_episode(
    pipeline: Pipeline, runner: RunnerState, path: str | Path, seed: int = 0
) -> tuple[float, int]:
    """One deterministic episode of ``runner``'s policy drawn to the GIF
    ``path``; returns its ``(return, length)``. Check the env first with
    :func:`ppo_jax.analysis.evaluation.check_gif`."""
    if is_mujoco_run(pipeline.config.env_name):
        return render_mujoco_gif(pipeline, runner, path, seed)
    policy = numpy_policy(pipeline, runner)
    return render_gif(pipeline.config, policy, path, seed)


def check_gif_every(config: PPOConfig, every: int) -> None:
    """Refuse ``--gif-every`` in one sentence, before compiling, where no
    renderer works for ``config``'s env."""
    try:
        check_gif(config, f"{VIDEOS_DIR}/")
    except ConfigError as e:
        raise ConfigError("gif_every", every, e.allowed) from e


def gif_every(every: int, run: int = 0, seed: int = 0) -> PolicyCallback:
    """A policy callback that draws one deterministic episode of run ``run``
    to ``RUN_DIR/videos/iteration_NNNNNN.gif`` at the first chunk boundary at
    or after every multiple of ``every`` iterations, and logs it as a video to
    TensorBoard and wandb when the run logs there.

    A GIF that cannot be written (a full disk) is a note on stderr, and the
    next ones are not tried; training goes on.
    """
    if every < 1:
        raise ConfigError("gif_every", every, "a positive number of iterations")
    previous: int | None = None
    failed = False

    def record(snapshot: PolicySnapshot) -> StopRequest | None:
        nonlocal previous, failed
        if snapshot.run != run or failed:
            return None
        config = snapshot.pipeline.config
        if previous is None:  # the chunk before: a fresh or a resumed run
            chunk = min(config.save_freq, config.num_iterations)
            previous = max(snapshot.iteration - chunk, 0)
        crossed = snapshot.iteration // every > previous // every
        previous = snapshot.iteration
        if not crossed:
            return None
        name = f"iteration_{snapshot.iteration:06d}.gif"
        path = snapshot.run_dir / VIDEOS_DIR / name
        started = time.perf_counter()
        try:
            path.parent.mkdir(exist_ok=True)
            total, length = render_episode(
                snapshot.pipeline, snapshot.runner, path, seed
            )
        except (OSError, RunDirError) as e:  # a full disk, a read-only dir
            failed = True
            print(f"note: no more GIFs during training ({e})", file=sys.stderr)
            return None
        seconds = time.perf_counter() - started
        print(
            f"gif: {path} (iteration {snapshot.iteration}, "
            f"{renderer_name(config)} episode, length={length} "
            f"return={total:.2f}, {seconds:.1f} s)",
            flush=True,
        )
        snapshot.log_video(path, "policy")
        return None

    return record
