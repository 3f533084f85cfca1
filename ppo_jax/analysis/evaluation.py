"""Evaluating a trained policy deterministically (the policy's mode).

The command line is ``python -m ppo_jax.evaluate RUN_DIR`` (:mod:`ppo_jax.evaluate`);
in Python, :func:`load_policy`, :func:`evaluate_policy` and
:func:`evaluate_gymnasium`. Every path acts through the run's
:class:`~ppo_jax.algo.policy.Policy` (frozen observation statistics, action clipping).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np

from ppo_jax.algo.evaluation import evaluate_episodes
from ppo_jax.algo.normalization import RunningMeanStd
from ppo_jax.algo.ppo import Pipeline, RunnerState, build_pipeline
from ppo_jax.analysis.rendering import check_mujoco_rendering, is_mujoco_run, save_gif
from ppo_jax.config.ppo_config import ConfigError, Hyperparams, PPOConfig
from ppo_jax.config.runspec import RunSpec
from ppo_jax.envs import Environment, split_env_name
from ppo_jax.envs.contract import PyTree
from ppo_jax.networks import NetworkFactory, Params
from ppo_jax.run import rundir
from ppo_jax.run.experiment import runner_template
from ppo_jax.run.host_policy import (
    NumpyPolicy,
    RecurrentNumpyPolicy,
    episode_policy,
    numpy_policy,
)
from ppo_jax.run.signals import check_stop

__all__ = [  # the host policies live in ppo_jax.run.host_policy
    "NumpyPolicy",
    "RecurrentNumpyPolicy",
    "episode_policy",
    "evaluate_policy",
    "evaluate_gymnasium",
    "load_policy",
    "load_run",
    "numpy_policy",
    "run_hyperparams",
]
# Episodes evaluated at once (vmapped); eval_episodes' highest value, so that
# an evaluation in the run plays the episodes of evaluate_run's first batch.
EPISODE_BATCH = 1024

# gymnax envs whose reference implementation gymnasium ships (same name).
GYMNASIUM_ENVS = (
    "Pendulum-v1",
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCarContinuous-v0",
)


def evaluate_policy(
    pipeline: Pipeline,
    actor_params: Params,
    obs_stats: RunningMeanStd,
    key: jax.Array,
    num_episodes: int,
    max_steps: int | None = None,
    actions: str | None = None,
    hp: Hyperparams | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Run ``num_episodes`` episodes with the deterministic action, or sampled
    ones (``actions``: ``"mode"`` or ``"sample"``; default: the run's
    ``eval_actions``).

    The deterministic action is the policy's mode: the Gaussian mean (as the
    tutorial's test mode) or the most likely discrete action; a sample is drawn
    with the hyperparameters ``hp`` (default: the config's; for a run of a
    sweep, :func:`run_hyperparams`). Observations are normalized with the
    frozen training statistics ``obs_stats`` when the run normalized them.
    Episodes run in parallel (vmap) for ``max_steps`` steps (default: the env's
    time limit ``params.max_steps_in_episode``); rewards after an episode ends
    are ignored.

    Returns:
        ``(returns, lengths)``: ``[num_episodes]`` float32 undiscounted returns
        and int32 lengths.
    """
    if max_steps is None:
        max_steps = pipeline.spec.max_episode_steps
    if max_steps is None:
        raise ConfigError(
            "max_steps",
            None,
            "a number of steps for an environment whose params have no "
            "max_steps_in_episode",
        )
    config = pipeline.config
    if actions not in (None, "mode", "sample"):
        raise ConfigError("actions", actions, "mode or sample")
    return evaluate_episodes(
        pipeline.setup,
        pipeline.policy,
        actor_params,
        obs_stats,
        key,
        num_episodes,
        max_steps,
        sample=(actions or config.eval_actions) == "sample",
        hp=config.hyperparams() if hp is None else hp,
    )


def _run_spec(run_dir: Path, run: int) -> tuple[PPOConfig, RunSpec]:
    """A run directory's config and run spec, once ``run`` is known to be
    one of its runs."""
    config = rundir.load_config(run_dir)
    spec = rundir.load_run_spec(run_dir, config)
    if not 0 <= run < spec.num_runs:
        raise ConfigError("run", run, f"an index from 0 to {spec.num_runs - 1}")
    return config, spec


def load_run(
    run_dir: str | Path,
    run: int = 0,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
) -> tuple[Pipeline, RunnerState]:
    """Load ``(pipeline, runner)`` of a run directory's latest checkpoint.

    For a multi-seed or sweep directory, ``run`` picks one of its runs (the
    returned runner has no run axis). ``env``, ``env_params`` and ``network``:
    the objects a run trained with through those doors of ``run_training``.
    """
    run_dir = Path(run_dir)
    config, spec = _run_spec(run_dir, run)
    pipeline = build_pipeline(config, env=env, env_params=env_params, network=network)
    runner = rundir.load_checkpoint(run_dir, runner_template(pipeline, spec), config)
    if spec.batched:
        runner = jax.tree.map(lambda x: x[run], runner)
    return pipeline, runner


def run_hyperparams(run_dir: str | Path, run: int = 0) -> Hyperparams:
    """The hyperparameters run ``run`` of a run directory trained with (a
    sweep's values for a run of a sweep)."""
    _, spec = _run_spec(Path(run_dir), run)
    hp = spec.hyperparams()
    return jax.tree.map(lambda x: x[run], hp) if spec.batched else hp


def evaluate_run(
    pipeline: Pipeline,
    runner: RunnerState,
    num_episodes: int = 10,
    seed: int = 0,
    actions: str | None = None,
    hp: Hyperparams | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a loaded run (see :func:`load_run`) in its gymnax env, with
    ``actions`` and ``hp`` as :func:`evaluate_policy`.

    Episodes run in vmapped batches of at most ``EPISODE_BATCH`` (one compile),
    so memory stays bounded however many are asked for; batch ``b`` uses the
    key ``fold_in(key(seed), b)`` (the first batch: ``key(seed)`` itself).

    Returns numpy ``(returns, lengths)``, ``[num_episodes]`` each.
    """
    batch = min(num_episodes, EPISODE_BATCH)
    fn = jax.jit(
        lambda params, stats, key: evaluate_policy(
            pipeline, params, stats, key, batch, actions=actions, hp=hp
        )
    )
    key = jax.random.key(seed)
    params, stats = runner.agent.actor_params, runner.envs.obs_stats
    results = []
    for b in range(-(-num_episodes // batch)):
        check_stop()  # a Ctrl-C of the command line: stop between batches
        batch_key = key if b == 0 else jax.random.fold_in(key, b)
        results.append(fn(params, stats, batch_key))
    returns = np.concatenate([np.asarray(r) for r, _ in results])[:num_episodes]
    lengths = np.concatenate([np.asarray(n) for _, n in results])[:num_episodes]
    return returns, lengths


def load_policy(
    run_dir: str | Path,
    run: int = 0,
    *,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
) -> NumpyPolicy | RecurrentNumpyPolicy:
    """The deterministic policy of a run directory: :func:`numpy_policy` of
    :func:`load_run`. ``run`` picks a run of a multi-seed or sweep directory.

    ``policy(obs) -> action``, or for a recurrent run ``policy(obs, state) ->
    (action, state)`` (a :class:`RecurrentNumpyPolicy`: ``state=None`` starts an
    episode)."""
    return numpy_policy(*load_run(run_dir, run, env, env_params, network))


def check_gif(config: PPOConfig, path: str) -> None:
    """Refuse ``--gif`` in one sentence where no renderer works: gymnasium's
    for gymnax runs (checked by :func:`check_gymnasium`), MuJoCo's for
    Playground and brax runs."""
    if is_mujoco_run(config.env_name):
        check_mujoco_rendering(config.env_name, path)
    elif split_env_name(config.env_name) not in [("gymnax", t) for t in GYMNASIUM_ENVS]:
        raise ConfigError(
            "gif",
            path,
            f"none for {config.env_name}: GIFs are drawn by gymnasium (for the "
            f"gymnax envs it also has: {', '.join(GYMNASIUM_ENVS)}) or by MuJoCo "
            "(playground/ and brax/ envs)",
        )
    else:
        check_gymnasium(config)


def check_gymnasium(config: PPOConfig) -> ModuleType:
    """Refuse, before any loading, envs gymnasium lacks or a missing install;
    returns the gymnasium module."""
    family, task = split_env_name(config.env_name)
    if family != "gymnax" or task not in GYMNASIUM_ENVS:
        raise ConfigError(
            "backend",
            "gymnasium",
            f"gymnax for {config.env_name}; gymnasium has the same environment "
            f"only for {', '.join(GYMNASIUM_ENVS)}",
        )
    try:
        import gymnasium
    except ImportError as e:
        raise ConfigError(
            "backend",
            "gymnasium",
            "gymnax unless gymnasium is installed (pip install -e '.[gym]')",
        ) from e
    return gymnasium


def _gymnasium_env(config: PPOConfig, render: bool = False) -> Any:
    gymnasium = check_gymnasium(config)
    kwargs: dict[str, Any] = {}
    if render:
        # Off-screen frames only: keep pygame (SDL) from probing for a display
        # and a sound card, which fails noisily on headless machines.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        kwargs["render_mode"] = "rgb_array"
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    env = gymnasium.make(split_env_name(config.env_name)[1], **kwargs)
    if config.hide_obs is not None:
        # The entries the run never saw are removed here as in training.
        hidden = list(config.hide_obs)
        space = env.observation_space
        kept = gymnasium.spaces.Box(
            np.delete(space.low, hidden), np.delete(space.high, hidden)
        )
        env = gymnasium.wrappers.TransformObservation(
            env, lambda obs: np.delete(obs, hidden), kept
        )
    return env


def run_gymnasium_episode(
    env: Any,
    policy: NumpyPolicy | RecurrentNumpyPolicy,
    seed: int,
    frames: list[np.ndarray] | None = None,
) -> tuple[float, int]:
    """One episode of ``policy`` (numpy obs -> action; a recurrent one starts
    from its initial state) in a gymnasium env.

    Returns ``(return, length)``; appends rendered frames when ``frames`` is a
    list.
    """
    policy = episode_policy(policy)
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    discrete = hasattr(env.action_space, "n")
    while not done:
        if frames is not None:
            frames.append(env.render())
        action = policy(obs)
        sent = int(action) if discrete else np.asarray(action, np.float32)
        obs, reward, terminated, truncated, _ = env.step(sent)
        total += float(reward)
        length += 1
        done = terminated or truncated
    if frames is not None:
        frames.append(env.render())
    return total, length


def evaluate_gymnasium(
    config: PPOConfig,
    policy: NumpyPolicy | RecurrentNumpyPolicy,
    num_episodes: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``policy`` (numpy in, numpy out: :func:`numpy_policy`) in gymnasium's
    env of ``config.env_name``; episode ``i`` resets with seed ``seed + i``.

    Returns numpy ``(returns, lengths)``.
    """
    env = _gymnasium_env(config)
    results = [
        run_gymnasium_episode(env, policy, seed + i) for i in range(num_episodes)
    ]
    env.close()
    returns = np.asarray([r for r, _ in results], np.float32)
    lengths = np.asarray([n for _, n in results], np.int32)
    return returns, lengths


def render_gif(
    config: PPOConfig,
    policy: NumpyPolicy | RecurrentNumpyPolicy,
    path: str | Path,
    seed: int = 0,
) -> tuple[float, int]:
    """Render one episode of ``policy`` to an animated GIF (gymnasium's
    ``rgb_array`` frames). Returns ``(return, length)`` of that episode."""
    env = _gymnasium_env(config, render=True)
    frames: list[np.ndarray] = []
    result = run_gymnasium_episode(env, policy, seed, frames)
    env.close()
    save_gif(frames, path)
    return result
