"""The action distribution, chosen from the action space and ``policy_std``.

- continuous actions, ``policy_std="fixed"`` (the tutorial):
  ``MultivariateNormal(mean, diag(action_variance))``, variance 0.5 (std
  sqrt(0.5) ~= 0.7071), never learned;
- continuous actions, ``policy_std="learned"``: diagonal Gaussian with the
  actor's state-independent learned log-std;
- discrete actions: Categorical over the actor's logits.

``log_prob`` sums over action dimensions (shape ``[...]``), like torch's
``MultivariateNormal``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

import ppo_jax._compat  # noqa: F401  (before distrax: see that module)

# isort: split
import distrax

from ppo_jax.config.ppo_config import Hyperparams
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


def categorical(logits: jax.Array) -> distrax.Categorical:
    """Categorical over the last axis of ``logits`` ``[..., num_actions]``."""
    return distrax.Categorical(logits=logits)


class ActionDistribution(NamedTuple):
    """How the actor's output becomes actions."""

    # (actor output, hparams) -> distrax distribution over actions
    dist: Callable[[ActorOutput, Hyperparams], distrax.Distribution]
    # actor output -> deterministic action (Gaussian mean, or int32 argmax)
    mode: Callable[[ActorOutput], jax.Array]


def _fixed(a: ActorOutput, hp: Hyperparams) -> distrax.Distribution:
    return fixed_variance_gaussian(a.out, hp.action_variance)


def _learned(a: ActorOutput, hp: Hyperparams) -> distrax.Distribution:
    assert a.log_std is not None  # the network checks guarantee it
    return learned_std_gaussian(a.out, a.log_std)


def _categorical(a: ActorOutput, hp: Hyperparams) -> distrax.Distribution:
    return categorical(a.out)


def _mean(a: ActorOutput) -> jax.Array:
    return a.out


def _argmax(a: ActorOutput) -> jax.Array:
    return jnp.argmax(a.out, axis=-1).astype(jnp.int32)


def make_action_distribution(
    discrete: bool, policy_std: str | None
) -> ActionDistribution:
    """Categorical for discrete actions; the ``policy_std`` Gaussian otherwise."""
    if discrete:
        return ActionDistribution(dist=_categorical, mode=_argmax)
    return ActionDistribution(
        dist=_learned if policy_std == "learned" else _fixed, mode=_mean
    )
