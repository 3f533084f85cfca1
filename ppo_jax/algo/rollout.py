"""Collecting a batch: ``num_envs`` vmapped envs stepped in ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.algo.normalization import (
    RunningMeanStd,
    init_observation_stats,
    init_running_stats,
    scale,
    update_observation_stats,
    update_running_stats,
)
from ppo_jax.algo.policy import Observation, ObservationStats, Policy
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import EnvSetup, PyTree
from ppo_jax.networks import Params
from ppo_jax.networks.memory import Memory, restart


class Transition(NamedTuple):
    """One rollout, time-major. ``T = rollout_length``, ``N = num_envs``.

    With ``critic_obs_key`` every observation field is an
    ``AsymmetricObservation`` of ``[T, N, ...]`` arrays (actor and critic)."""

    obs: Observation  # [T, N, *obs_shape] what the actor saw (normalized if on)
    action: jax.Array  # [T, N, action_dim] float32 or [T, N] int32; as sampled
    log_prob: jax.Array  # [T, N] log-probability of the action when sampled
    reward: jax.Array  # [T, N] float32 reward to learn from (scaled if enabled)
    done: jax.Array  # [T, N] bool: episode ended (terminated or truncated)
    # With bootstrap_truncation only (else None):
    final_obs: Observation | None  # [T, N, *obs_shape] pre-reset obs (normalized)
    truncated: jax.Array | None  # [T, N] bool: ended by the time limit alone


class EpisodeStats(NamedTuple):
    """Episodes that finished during one rollout (scalars, raw rewards)."""

    return_sum: jax.Array  # float32, sum of their undiscounted returns
    length_sum: jax.Array  # int32, sum of their lengths in steps
    episodes: jax.Array  # int32, how many finished


@struct.dataclass
class EnvBatch:
    """The state of ``N`` environments between steps, with the running
    statistics of the normalization options (as gym's wrappers keep them)."""

    state: PyTree  # the env's own state, leaves batched over [N]
    obs: Observation  # [N, *obs_shape] current raw observation
    episode_return: jax.Array  # [N] undiscounted return of the running episode
    episode_length: jax.Array  # [N] int32 steps in the running episode
    discounted_return: jax.Array  # [N] for reward scaling
    obs_stats: ObservationStats  # [*obs_shape] observation statistics (per part)
    return_stats: RunningMeanStd  # scalar statistics of discounted_return
    # The networks' carries [N, ...], ready for ``obs`` (restarted after an
    # episode ended); () for networks without memory. The rollout steps the
    # actor's; the critic's is advanced by the value pass after it.
    memory: Memory


def _strong(tree: PyTree) -> PyTree:
    # gymnax resets build some leaves from Python scalars (weak types); a scan
    # carry must keep one exact dtype, so pin them.
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), tree)


def reset_envs(
    setup: EnvSetup, key: jax.Array, config: PPOConfig, memory: Memory
) -> EnvBatch:
    """``N`` freshly reset environments; ``memory``: the networks' initial
    carries (:func:`ppo_jax.networks.memory.initial_memory`)."""
    n = config.num_envs
    obs, state = jax.vmap(setup.env.reset, in_axes=(0, None))(
        jax.random.split(key, n), setup.params
    )
    obs_stats = init_observation_stats(obs)
    if config.normalize_obs:
        obs_stats = update_observation_stats(obs_stats, obs)
    return EnvBatch(
        state=_strong(state),
        obs=obs,
        episode_return=jnp.zeros((n,), jnp.float32),
        episode_length=jnp.zeros((n,), jnp.int32),
        discounted_return=jnp.zeros((n,), jnp.float32),
        obs_stats=obs_stats,
        return_stats=init_running_stats(()),
        memory=memory,
    )


Rollout: TypeAlias = Callable[
    [Params, EnvBatch, jax.Array, Hyperparams],
    tuple[EnvBatch, Transition, EpisodeStats],
]


def make_rollout(setup: EnvSetup, policy: Policy, config: PPOConfig) -> Rollout:
    """Build ``rollout(actor_params, envs, key, hparams)``.

    Returns ``(envs, transitions, stats)``: the env batch after
    ``rollout_length`` steps, a :class:`Transition` of ``[T, N, ...]`` arrays and
    the :class:`EpisodeStats` of episodes that ended inside the rollout.
    """
    vmapped_step = jax.vmap(setup.env.step, in_axes=(0, 0, 0, None))
    env_params = setup.params

    def rollout(
        actor_params: Params, envs: EnvBatch, key: jax.Array, hp: Hyperparams
    ) -> tuple[EnvBatch, Transition, EpisodeStats]:
        def env_step(
            carry: tuple[EnvBatch, EpisodeStats], step_key: jax.Array
        ) -> tuple[tuple[EnvBatch, EpisodeStats], Transition]:
            envs, stats = carry
            action_key, env_key = jax.random.split(step_key)

            # Act: sample; the env may get a clipped copy, the sample is stored.
            obs, action, log_prob, env_action, carry = policy.sample(
                actor_params,
                envs.obs_stats,
                envs.obs,
                action_key,
                hp,
                envs.memory.actor,
            )

            # Step every env; gymnax resets finished ones by itself.
            next_obs, state, reward, terminated, truncated, info = vmapped_step(
                jax.random.split(env_key, config.num_envs),
                envs.state,
                env_action,
                env_params,
            )
            reward = reward.astype(jnp.float32)
            done = jnp.logical_or(terminated, truncated)

            # Normalization statistics, updated as gym's wrappers do.
            obs_stats = envs.obs_stats
            if config.normalize_obs:
                obs_stats = update_observation_stats(obs_stats, next_obs)
            disc_return, return_stats = envs.discounted_return, envs.return_stats
            learn_reward = reward
            if config.normalize_reward:
                disc_return = disc_return * hp.gamma + reward
                return_stats = update_running_stats(return_stats, disc_return)
                learn_reward = scale(reward, return_stats)

            final_obs = time_limited = None
            if config.bootstrap_truncation:
                final_obs = policy.observe(info["final_observation"], obs_stats)
                time_limited = jnp.logical_and(truncated, jnp.logical_not(terminated))

            # Episode bookkeeping for the metrics (raw rewards).
            ep_return = envs.episode_return + reward
            ep_length = envs.episode_length + 1
            stats = EpisodeStats(
                return_sum=stats.return_sum + jnp.sum(jnp.where(done, ep_return, 0.0)),
                length_sum=stats.length_sum + jnp.sum(jnp.where(done, ep_length, 0)),
                episodes=stats.episodes + jnp.sum(done, dtype=jnp.int32),
            )
            transition = Transition(
                obs, action, log_prob, learn_reward, done, final_obs, time_limited
            )
            envs = EnvBatch(
                state=_strong(state),
                obs=next_obs,
                episode_return=jnp.where(done, 0.0, ep_return),
                episode_length=jnp.where(done, 0, ep_length),
                discounted_return=jnp.where(done, 0.0, disc_return),
                obs_stats=obs_stats,
                return_stats=return_stats,
                # The next observation starts a new episode where this ended.
                memory=Memory(restart(policy.actor, carry, done), envs.memory.critic),
            )
            return (envs, stats), transition

        zero_stats = EpisodeStats(
            jnp.zeros((), jnp.float32),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
        )
        (envs, stats), transitions = jax.lax.scan(
            env_step, (envs, zero_stats), jax.random.split(key, config.rollout_length)
        )
        return envs, transitions, stats

    return rollout
