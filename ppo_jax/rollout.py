"""Collecting a batch: ``num_envs`` vmapped gymnax envs stepped in ``lax.scan``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.distributions import fixed_variance_gaussian


class Transition(NamedTuple):
    """One rollout, time-major. ``T = rollout_length``, ``N = num_envs``."""

    obs: jax.Array  # [T, N, obs_dim] observation the action was chosen from
    action: jax.Array  # [T, N, action_dim] sampled action, as sent and stored
    log_prob: jax.Array  # [T, N] log-probability of the action when sampled
    reward: jax.Array  # [T, N] float32
    done: jax.Array  # [T, N] bool: episode ended (terminated or truncated)


class EpisodeStats(NamedTuple):
    """Episodes that finished during one rollout (scalars)."""

    return_sum: jax.Array  # float32, sum of their undiscounted returns
    length_sum: jax.Array  # int32, sum of their lengths in steps
    count: jax.Array  # int32, how many finished


@struct.dataclass
class EnvBatch:
    """The state of ``N`` environments between steps."""

    state: Any  # gymnax env state, leaves batched over [N]
    obs: jax.Array  # [N, obs_dim] current observation
    episode_return: jax.Array  # [N] undiscounted return of the running episode
    episode_length: jax.Array  # [N] int32 steps in the running episode


def _strong(tree):
    # gymnax resets build some leaves from Python scalars (weak types); a scan
    # carry must keep one exact dtype, so pin them.
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), tree)


def reset_envs(env, env_params, key: jax.Array, num_envs: int) -> EnvBatch:
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key, num_envs), env_params
    )
    return EnvBatch(
        state=_strong(state),
        obs=obs.astype(jnp.float32),
        episode_return=jnp.zeros((num_envs,), jnp.float32),
        episode_length=jnp.zeros((num_envs,), jnp.int32),
    )


def make_rollout(env, env_params, actor, rollout_length: int):
    """Build ``rollout(actor_params, envs, key, action_variance)``.

    Returns ``(envs, transitions, stats)``: the env batch after
    ``rollout_length`` steps, a :class:`Transition` of ``[T, N, ...]`` arrays and
    the :class:`EpisodeStats` of episodes that ended inside the rollout.
    """
    vmapped_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(actor_params, envs: EnvBatch, key: jax.Array, action_variance):
        def env_step(carry, step_key):
            envs, stats = carry
            action_key, env_key = jax.random.split(step_key)
            num_envs = envs.obs.shape[0]

            # Act: sample from the fixed-variance Gaussian around the mean.
            mean = actor.apply(actor_params, envs.obs)
            dist = fixed_variance_gaussian(mean, action_variance)
            action, log_prob = dist.sample_and_log_prob(seed=action_key)

            # Step every env; gymnax resets finished ones by itself.
            obs, state, reward, terminated, truncated, _ = vmapped_step(
                jax.random.split(env_key, num_envs), envs.state, action, env_params
            )
            reward = reward.astype(jnp.float32)
            done = jnp.logical_or(terminated, truncated)

            # Episode bookkeeping for the metrics.
            ep_return = envs.episode_return + reward
            ep_length = envs.episode_length + 1
            stats = EpisodeStats(
                return_sum=stats.return_sum + jnp.sum(jnp.where(done, ep_return, 0.0)),
                length_sum=stats.length_sum + jnp.sum(jnp.where(done, ep_length, 0)),
                count=stats.count + jnp.sum(done, dtype=jnp.int32),
            )
            transition = Transition(envs.obs, action, log_prob, reward, done)
            envs = EnvBatch(
                state=_strong(state),
                obs=obs.astype(jnp.float32),
                episode_return=jnp.where(done, 0.0, ep_return),
                episode_length=jnp.where(done, 0, ep_length),
            )
            return (envs, stats), transition

        zero_stats = EpisodeStats(
            jnp.zeros((), jnp.float32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
        )
        (envs, stats), transitions = jax.lax.scan(
            env_step, (envs, zero_stats), jax.random.split(key, rollout_length)
        )
        return envs, transitions, stats

    return rollout
