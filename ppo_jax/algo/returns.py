"""Discounted returns and advantages, time-major ``[T, N]``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rewards_to_go(
    rewards: jax.Array,
    dones: jax.Array,
    gamma: jax.Array | float,
    bootstrap_value: jax.Array,
) -> jax.Array:
    """Discounted rewards-to-go by a reverse scan over time.

    ``G[t] = rewards[t] + gamma * (1 - dones[t]) * G[t+1]`` with
    ``G[T] = bootstrap_value``: the tutorial's backward loop, restarted at each
    episode end, and continued from ``bootstrap_value`` (the critic's value of
    the next observation) where the batch end cuts an episode.

    Args:
        rewards: ``[T, N]`` rewards.
        dones: ``[T, N]`` true (or 1) where the episode ended at step ``t``.
        gamma: discount, a Python float or a traced scalar.
        bootstrap_value: ``[N]`` value of the observation after step ``T-1``.

    Returns:
        ``[T, N]`` float32 rewards-to-go.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    continues = 1.0 - jnp.asarray(dones, jnp.float32)
    gamma = jnp.asarray(gamma, jnp.float32)

    def step(next_return, inputs):
        reward, cont = inputs
        g = reward + gamma * cont * next_return
        return g, g

    _, returns = jax.lax.scan(
        step,
        jnp.asarray(bootstrap_value, jnp.float32),
        (rewards, continues),
        reverse=True,
    )
    return returns


def normalize_advantages(advantages: jax.Array, eps: float = 1e-10) -> jax.Array:
    """``(A - mean) / (std + eps)`` over the whole batch.

    ``std`` is the unbiased (n-1) estimate, as ``torch.Tensor.std`` computes it
    in the tutorial.
    """
    return (advantages - advantages.mean()) / (advantages.std(ddof=1) + eps)


def generalized_advantages(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
    bootstrap_value: jax.Array,
) -> jax.Array:
    """GAE(lambda) by a reverse scan over time.

    ``delta[t] = r[t] + gamma * (1 - done[t]) * V[t+1] - V[t]`` and
    ``A[t] = delta[t] + gamma * lambda * (1 - done[t]) * A[t+1]``, with
    ``V[T] = bootstrap_value`` and ``A[T] = 0``. The value targets are
    ``A + V``.

    Args:
        rewards, values, dones: ``[T, N]``; ``values[t] = V(obs[t])``.
        gamma, gae_lambda: Python floats or traced scalars.
        bootstrap_value: ``[N]`` value of the observation after step ``T-1``.

    Returns:
        ``[T, N]`` float32 advantages.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    continues = 1.0 - jnp.asarray(dones, jnp.float32)
    values = jnp.asarray(values, jnp.float32)
    next_values = jnp.concatenate(
        [values[1:], jnp.asarray(bootstrap_value, jnp.float32)[None]], axis=0
    )
    gamma = jnp.asarray(gamma, jnp.float32)
    discount = gamma * jnp.asarray(gae_lambda, jnp.float32)

    def step(next_advantage, inputs):
        reward, cont, value, next_value = inputs
        delta = reward + gamma * cont * next_value - value
        advantage = delta + discount * cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        step,
        jnp.zeros_like(values[0]),
        (rewards, continues, values, next_values),
        reverse=True,
    )
    return advantages
