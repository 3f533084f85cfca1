"""Evaluating a trained policy deterministically (the mean action).

``python -m ppo_jax.evaluate RUN_DIR [--episodes N] [--seed S] [--backend
gymnax|gymnasium] [--gif OUT.gif]`` (see ``ppo_jax.cli``); in Python,
:func:`load_policy`, :func:`evaluate_policy` and :func:`evaluate_gymnasium`.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.checkpoint import CheckpointError, load_checkpoint, load_config
from ppo_jax.config import ConfigError
from ppo_jax.experiment import load_run_spec
from ppo_jax.normalization import normalize
from ppo_jax.train import build_pipeline

# gymnax envs whose reference implementation gymnasium ships (same name).
GYMNASIUM_ENVS = (
    "Pendulum-v1",
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCarContinuous-v0",
)


def evaluate_policy(pipeline, actor_params, obs_stats, key, num_episodes: int):
    """Run ``num_episodes`` episodes with the deterministic action.

    The action is the policy's mode: the Gaussian mean (as the tutorial's test
    mode) or the most likely discrete action; observations are normalized with
    the frozen training statistics ``obs_stats`` when the run normalized them.
    Episodes run in parallel (vmap) for the env's time limit
    ``env_params.max_steps_in_episode`` steps; rewards after an episode ends are
    ignored.

    Returns:
        ``(returns, lengths)``: ``[num_episodes]`` float32 undiscounted returns
        and int32 lengths.
    """
    env, env_params = pipeline.env, pipeline.env_params
    act = make_deterministic_policy(pipeline, actor_params, obs_stats)
    max_steps = int(env_params.max_steps_in_episode)

    def episode(key):
        reset_key, steps_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)

        def step(carry, step_key):
            obs, state, total, length, running = carry
            action = act(obs)
            obs, state, reward, terminated, truncated, _ = env.step(
                step_key, state, action, env_params
            )
            total = total + jnp.where(running, reward.astype(jnp.float32), 0.0)
            length = length + running.astype(jnp.int32)
            running = running & ~(terminated | truncated)
            return (obs, state, total, length, running), None

        init = (obs, state, jnp.float32(0.0), jnp.int32(0), jnp.bool_(True))
        (_, _, total, length, _), _ = jax.lax.scan(
            step, init, jax.random.split(steps_key, max_steps)
        )
        return total, length

    return jax.vmap(episode)(jax.random.split(key, num_episodes))


def make_deterministic_policy(pipeline, actor_params, obs_stats):
    """``act(raw_obs [..., obs_dim]) -> action``: the policy's mode.

    Observations are normalized with the frozen ``obs_stats`` and actions
    clipped to the env's bounds when the run did so during training.
    """
    config, spec = pipeline.config, pipeline.spec

    def act(obs):
        obs = jnp.asarray(obs, jnp.float32)
        if config.normalize_obs:
            obs = normalize(obs, obs_stats)
        action = pipeline.policy.mode(pipeline.actor.apply(actor_params, obs))
        if config.clip_actions:
            action = jnp.clip(action, spec.action_low, spec.action_high)
        return action

    return act


def load_run(run_dir: str | Path, run: int = 0):
    """Load ``(pipeline, runner)`` of a run directory's latest checkpoint.

    For a multi-seed or sweep directory, ``run`` picks one of its runs (the
    returned runner has no run axis).
    """
    config = load_config(run_dir)
    spec = load_run_spec(run_dir, config)
    pipeline = build_pipeline(config)
    init = jax.vmap(pipeline.init) if spec.batched else pipeline.init
    template = jax.eval_shape(init, spec.keys(), spec.hyperparams())
    runner, saved_config = load_checkpoint(run_dir, template)
    if not 0 <= run < spec.num_runs:
        raise ConfigError("run", run, f"an index from 0 to {spec.num_runs - 1}")
    if spec.batched:
        runner = jax.tree.map(lambda x: x[run], runner)
    if saved_config != config:
        field = next(
            k for k, v in config.to_dict().items() if saved_config.to_dict()[k] != v
        )
        raise CheckpointError(
            f"the checkpoint in {str(run_dir)!r} was written for {field}="
            f"{getattr(saved_config, field)!r} but config.json says "
            f"{field}={getattr(config, field)!r}: the files come from different runs"
        )
    return pipeline, runner


def evaluate_run(pipeline, runner, num_episodes: int = 10, seed: int = 0):
    """Evaluate a loaded run (see :func:`load_run`) in its gymnax env.

    Returns numpy ``(returns, lengths)``.
    """
    fn = jax.jit(
        lambda params, stats, key: evaluate_policy(
            pipeline, params, stats, key, num_episodes
        )
    )
    returns, lengths = fn(
        runner.agent.actor_params, runner.envs.obs_stats, jax.random.key(seed)
    )
    return np.asarray(returns), np.asarray(lengths)


def load_policy(run_dir: str | Path, run: int = 0):
    """``policy(obs) -> action`` of a run directory: :func:`numpy_policy` of
    :func:`load_run`. ``run`` picks a run of a multi-seed or sweep directory."""
    return numpy_policy(*load_run(run_dir, run))


def numpy_policy(pipeline, runner):
    """Return ``policy(obs) -> action`` for a loaded run (deterministic).

    ``obs`` is a raw (unnormalized) numpy observation ``[obs_dim]`` or
    ``[batch, obs_dim]``. For continuous actions the result is the Gaussian
    mean, float32 ``[action_dim]`` or ``[batch, action_dim]`` (unclipped, as the
    tutorial's test mode sends it, or clipped to the bounds when the run
    trained with ``clip_actions``); for discrete actions the most likely
    action, int32 ``[]`` or ``[batch]``. Needs only numpy to call.
    """
    act = jax.jit(
        make_deterministic_policy(
            pipeline, runner.agent.actor_params, runner.envs.obs_stats
        )
    )

    def policy(obs) -> np.ndarray:
        return np.asarray(act(obs))

    return policy


def check_gymnasium(config):
    """Refuse, before any loading, envs gymnasium lacks or a missing install;
    returns the gymnasium module."""
    if config.env_name not in GYMNASIUM_ENVS:
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


def _gymnasium_env(config, render: bool = False):
    gymnasium = check_gymnasium(config)
    kwargs = {}
    if render:
        # Off-screen frames only: keep pygame (SDL) from probing for a display
        # and a sound card, which fails noisily on headless machines.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        kwargs["render_mode"] = "rgb_array"
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    return gymnasium.make(config.env_name, **kwargs)


def run_gymnasium_episode(env, policy, seed: int, frames: list | None = None):
    """One episode of ``policy`` (numpy obs -> action) in a gymnasium env.

    Returns ``(return, length)``; appends rendered frames when ``frames`` is a
    list.
    """
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    discrete = hasattr(env.action_space, "n")
    while not done:
        if frames is not None:
            frames.append(env.render())
        action = policy(obs)
        action = int(action) if discrete else np.asarray(action, np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        length += 1
        done = terminated or truncated
    if frames is not None:
        frames.append(env.render())
    return total, length


def evaluate_gymnasium(config, policy, num_episodes: int = 10, seed: int = 0):
    """Run ``policy`` (numpy in, numpy out: :func:`numpy_policy`) in gymnasium's
    env of ``config.env_name``; episode ``i`` resets with seed ``seed + i``.

    Returns numpy ``(returns, lengths)``.
    """
    env = _gymnasium_env(config)
    results = [
        run_gymnasium_episode(env, policy, seed + i) for i in range(num_episodes)
    ]
    env.close()
    returns, lengths = zip(*results, strict=True)
    return np.asarray(returns, np.float32), np.asarray(lengths, np.int32)


def render_gif(config, policy, path: str | Path, seed: int = 0):
    """Render one episode of ``policy`` to an animated GIF (gymnasium's
    ``rgb_array`` frames). Returns ``(return, length)`` of that episode."""
    from PIL import Image

    env = _gymnasium_env(config, render=True)
    frames: list = []
    result = run_gymnasium_episode(env, policy, seed, frames)
    env.close()
    images = [Image.fromarray(f) for f in frames]
    try:
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=40, loop=0
        )
    except OSError as e:
        raise CheckpointError(f"cannot write the GIF {str(path)!r} ({e})") from e
    return result


if __name__ == "__main__":
    from ppo_jax.cli import evaluate_main

    raise SystemExit(evaluate_main())
