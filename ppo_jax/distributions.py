"""The policy's action distribution, chosen from the config and the env.

- ``policy_std="fixed"`` (the tutorial): ``MultivariateNormal(mean,
  diag(action_variance))``, variance 0.5 (std sqrt(0.5) ~= 0.7071), never learned.
- ``policy_std="learned"``: diagonal Gaussian with a state-independent learned
  log-std (a parameter of the actor).
- discrete action spaces (``policy_std=None``): Categorical over the logits.

``log_prob`` sums over action dimensions (shape ``[...]``), like torch's
``MultivariateNormal``.
"""

from __future__ import annotations

from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

from ppo_jax.networks import ActorOutput


def fixed_variance_gaussian(
    mean: jax.Array, variance: jax.Array
) -> distrax.MultivariateNormalDiag:
    """Diagonal Gaussian over ``[..., action_dim]`` with fixed ``variance``."""
    scale = jnp.broadcast_to(jnp.sqrt(variance).astype(mean.dtype), mean.shape)
    return distrax.MultivariateNormalDiag(loc=mean, scale_diag=scale)


def learned_std_gaussian(
    mean: jax.Array, log_std: jax.Array
) -> distrax.MultivariateNormalDiag:
    """Diagonal Gaussian with std ``exp(log_std)`` (``[action_dim]``)."""
    return distrax.MultivariateNormalDiag(
        loc=mean, scale_diag=jnp.broadcast_to(jnp.exp(log_std), mean.shape)
    )


class PolicyDistribution(NamedTuple):
    """How to turn the actor's output into actions.

    dist(actor_output, hparams) -> distrax distribution
    mode(actor_output) -> deterministic action (mean or argmax)
    """

    dist: object
    mode: object


def make_policy_distribution(policy_std: str | None) -> PolicyDistribution:
    if policy_std is None:
        return PolicyDistribution(
            dist=lambda a, hp: distrax.Categorical(logits=a.out),
            mode=lambda a: jnp.argmax(a.out, axis=-1).astype(jnp.int32),
        )
    if policy_std == "fixed":
        dist = lambda a, hp: fixed_variance_gaussian(a.out, hp.action_variance)  # noqa: E731
    else:
        dist = lambda a, hp: learned_std_gaussian(a.out, a.log_std)  # noqa: E731
    return PolicyDistribution(dist=dist, mode=lambda a: a.out)


__all__ = [
    "ActorOutput",
    "PolicyDistribution",
    "fixed_variance_gaussian",
    "learned_std_gaussian",
    "make_policy_distribution",
]
