"""PPO's loss functions: pure, on flat batches, numbers checkable by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate_loss(
    log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    clip_eps: jax.Array | float,
) -> jax.Array:
    """PPO-clip actor loss ``-mean(min(r * A, clip(r, 1-eps, 1+eps) * A))``.

    ``r = exp(log_prob - old_log_prob)`` is the probability ratio of the
    stored actions under the current and the rollout policy. All inputs
    ``[B]``; returns a scalar.
    """
    ratio = jnp.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(values: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error of ``[B]`` values against ``[B]`` targets (scalar)."""
    return jnp.mean(jnp.square(values - targets))
