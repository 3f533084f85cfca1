"""Evaluation episodes: the policy's mode (or samples of it) on freshly reset
envs.

One function serves evaluation inside the compiled run (``eval_every``) and
after it (:func:`ppo_jax.evaluate_policy`, ``python -m ppo_jax.evaluate``), so
both play the same episodes for the same key.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ppo_jax.algo.policy import ObservationStats, Policy
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import EnvSetup
from ppo_jax.networks import Params


def evaluate_episodes(
    setup: EnvSetup,
    policy: Policy,
    actor_params: Params,
    obs_stats: ObservationStats,
    key: jax.Array,
    num_episodes: int,
    max_steps: int,
    sample: bool = False,
    hp: Hyperparams | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Run ``num_episodes`` episodes side by side (vmapped) with the
    deterministic action (:meth:`Policy.act`), or with ``sample`` an action
    sampled at each step (:meth:`Policy.sample`, the distribution's
    hyperparameters from ``hp``); a recurrent actor carries its memory through
    each episode, observations are normalized with the frozen statistics
    ``obs_stats``.

    Episode ``i`` resets and steps with keys from ``split(key,
    num_episodes)[i]``; each runs ``max_steps`` steps, and rewards after it
    ended are ignored. A sampled step splits its key into the env's and the
    action's.

    Returns:
        ``(returns, lengths)``: ``[num_episodes]`` float32 undiscounted returns
        and int32 lengths in steps.
    """
    if sample and hp is None:
        raise ValueError("sampled evaluation needs the run's hyperparameters (hp)")
    env, env_params = setup.env, setup.params

    def episode(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        reset_key, steps_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)

        def step(carry: Any, step_key: jax.Array) -> tuple[Any, None]:
            obs, state, memory, total, length, running = carry
            if sample:
                assert hp is not None  # checked on entry
                step_key, action_key = jax.random.split(step_key)
                chosen = policy.sample(
                    actor_params, obs_stats, obs, action_key, hp, memory
                )
                action, memory = chosen.env_action, chosen.carry
            else:
                action, memory = policy.act(actor_params, obs_stats, obs, memory)
            obs, state, reward, terminated, truncated, _ = env.step(
                step_key, state, action, env_params
            )
            total = total + jnp.where(running, reward.astype(jnp.float32), 0.0)
            length = length + running.astype(jnp.int32)
            running = running & ~(terminated | truncated)
            return (obs, state, memory, total, length, running), None

        memory = policy.initial_carry()
        init = (obs, state, memory, jnp.float32(0.0), jnp.int32(0), jnp.bool_(True))
        (*_, total, length, _), _ = jax.lax.scan(
            step, init, jax.random.split(steps_key, max_steps)
        )
        return total, length

    returns, lengths = jax.vmap(episode)(jax.random.split(key, num_episodes))
    return returns, lengths


def evaluation_due(iteration: jax.Array, config: PPOConfig) -> jax.Array:
    """bool: is the policy after ``iteration`` (int32, 1-based) evaluated?
    Every ``eval_every`` iterations and after the last one; never when
    ``eval_every`` is 0."""
    if config.eval_every == 0:
        return jnp.zeros(jnp.shape(iteration), jnp.bool_)
    return (iteration % config.eval_every == 0) | (iteration == config.num_iterations)
