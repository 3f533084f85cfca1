"""The policy's action distribution.

The tutorial samples from ``MultivariateNormal(mean, diag(0.5))``: a diagonal
Gaussian whose *variance* is fixed at ``action_variance`` (standard deviation
sqrt(0.5) ~= 0.7071), never learned.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp


def fixed_variance_gaussian(
    mean: jax.Array, variance: jax.Array
) -> distrax.MultivariateNormalDiag:
    """Diagonal Gaussian over ``[..., action_dim]`` with fixed ``variance``.

    Args:
        mean: ``[..., action_dim]`` the actor's output.
        variance: scalar, the same variance for every action dimension.

    Returns:
        A distribution whose ``log_prob`` sums over the action dimension
        (shape ``[...]``), like torch's ``MultivariateNormal``.
    """
    scale = jnp.broadcast_to(jnp.sqrt(variance).astype(mean.dtype), mean.shape)
    return distrax.MultivariateNormalDiag(loc=mean, scale_diag=scale)
