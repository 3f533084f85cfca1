"""Evaluating a trained policy deterministically (the mean action).

``python -m ppo_jax.evaluate RUN_DIR [--episodes N] [--seed S]`` (see
``ppo_jax.cli``); in Python, :func:`load_policy` and :func:`evaluate_policy`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.checkpoint import load_checkpoint, load_config
from ppo_jax.normalization import normalize
from ppo_jax.train import build_pipeline


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
    """``act(raw_obs [..., obs_dim]) -> action``: the policy's mode."""
    normalize_obs = pipeline.config.normalize_obs

    def act(obs):
        obs = jnp.asarray(obs, jnp.float32)
        if normalize_obs:
            obs = normalize(obs, obs_stats)
        return pipeline.policy.mode(pipeline.actor.apply(actor_params, obs))

    return act


def load_run(run_dir: str | Path):
    """Load ``(pipeline, runner)`` of a run directory's latest checkpoint."""
    config = load_config(run_dir)
    pipeline = build_pipeline(config)
    template = jax.eval_shape(pipeline.init, jax.random.key(0), config.hyperparams())
    runner, _ = load_checkpoint(run_dir, template)
    return pipeline, runner


def evaluate_run(run_dir: str | Path, num_episodes: int = 10, seed: int = 0):
    """Evaluate a run directory's checkpoint; returns numpy ``(returns, lengths)``."""
    pipeline, runner = load_run(run_dir)
    fn = jax.jit(
        lambda params, stats, key: evaluate_policy(
            pipeline, params, stats, key, num_episodes
        )
    )
    returns, lengths = fn(
        runner.agent.actor_params, runner.envs.obs_stats, jax.random.key(seed)
    )
    return np.asarray(returns), np.asarray(lengths)


def load_policy(run_dir: str | Path):
    """Return ``policy(obs) -> action`` for a trained run (deterministic).

    ``obs`` is a raw (unnormalized) numpy observation ``[obs_dim]`` or
    ``[batch, obs_dim]``. For continuous actions the result is the Gaussian
    mean, float32 ``[action_dim]`` or ``[batch, action_dim]`` (unclipped, as the
    tutorial's test mode sends it); for discrete actions the most likely
    action, int32 ``[]`` or ``[batch]``.
    """
    pipeline, runner = load_run(run_dir)
    act = jax.jit(
        make_deterministic_policy(
            pipeline, runner.agent.actor_params, runner.envs.obs_stats
        )
    )

    def policy(obs) -> np.ndarray:
        return np.asarray(act(obs))

    return policy


if __name__ == "__main__":
    from ppo_jax.cli import evaluate_main

    raise SystemExit(evaluate_main())
