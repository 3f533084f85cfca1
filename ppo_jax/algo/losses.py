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


def clipped_value_loss(
    values: jax.Array,
    old_values: jax.Array,
    targets: jax.Array,
    clip_eps: jax.Array | float,
) -> jax.Array:
    """PPO2-style clipped value loss (scalar).

    ``mean(max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2))``: the
    value may not move further than ``eps`` from the rollout's value estimate
    to lower the loss. All inputs ``[B]``.
    """
    clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return jnp.mean(
        jnp.maximum(jnp.square(values - targets), jnp.square(clipped - targets))
    )


def approx_kl(log_prob: jax.Array, old_log_prob: jax.Array) -> jax.Array:
    """Estimate of KL(old || new) from samples of the old policy (scalar).

    ``mean((r - 1) - log r)`` with ``r = exp(log_prob - old_log_prob)``: unbiased
    and never negative (Schulman's "k3" estimator).
    """
    log_ratio = log_prob - old_log_prob
    return jnp.mean(jnp.expm1(log_ratio) - log_ratio)
