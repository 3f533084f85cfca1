"""The action distribution, chosen from the action space and ``policy_std``.

- continuous actions, ``policy_std="fixed"`` (the tutorial):
  ``MultivariateNormal(mean, diag(action_variance))``, variance 0.5 (std
  sqrt(0.5) ~= 0.7071), never learned;
- continuous actions, ``policy_std="learned"``: diagonal Gaussian with the
  actor's state-independent learned log-std, std ``min_std + exp(log_std)``
  (a floor that keeps gradients, unlike a clip; ``min_std`` 0 by default);
  with ``bounded_mean`` the mean is the actor's output squashed into the
  action bounds by the policy (``ppo_jax.algo.policy``) before it gets here;
- discrete actions: Categorical over the actor's logits; multi-discrete
  actions (``parts``, MultiDiscrete's ``nvec``): one Categorical per part over
  its slice of the logits, independent.

A legal-action mask (bool, the logits' shape) sets the logits of illegal
actions to the lowest float32: they get probability exactly 0, so they are
never sampled nor chosen, and log-probabilities and entropy are those of the
distribution over the legal actions alone (a finite lowest value rather than
-inf keeps ``0 * log 0`` terms at 0, not NaN).

``log_prob`` sums over action dimensions and parts (shape ``[...]``), like
torch's ``MultivariateNormal``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    mean: jax.Array, log_std: jax.Array, min_std: jax.Array | float = 0.0
) -> distrax.MultivariateNormalDiag:
    """Diagonal Gaussian with std ``min_std + exp(log_std)`` (``log_std``
    ``[action_dim]``, ``min_std`` a scalar: 0 adds exactly nothing)."""
    std = jnp.asarray(min_std, mean.dtype) + jnp.exp(log_std)
    return distrax.MultivariateNormalDiag(
        loc=mean, scale_diag=jnp.broadcast_to(std, mean.shape)
    )


# The logit of an illegal action (and of a multi-discrete part's padding).
ILLEGAL_LOGIT = float(np.finfo(np.float32).min)


def masked_logits(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """``logits`` with illegal actions (``mask`` False) at the lowest float."""
    if mask is None:
        return logits
    return jnp.where(mask, logits, jnp.asarray(ILLEGAL_LOGIT, logits.dtype))


def categorical(
    logits: jax.Array, mask: jax.Array | None = None
) -> distrax.Categorical:
    """Categorical over the last axis of ``logits`` ``[..., num_actions]``,
    over the legal actions of ``mask`` (bool, same shape) when given."""
    return distrax.Categorical(logits=masked_logits(logits, mask))


def part_layout(parts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Where each part's choices sit in the flat logits ``[sum(parts)]``:
    ``(index, valid)``, both ``[len(parts), max(parts)]``; rows shorter than
    the longest part are padded (``valid`` False, index 0)."""
    width = max(parts)
    starts = np.cumsum((0,) + parts[:-1])
    columns = np.arange(width)
    valid = columns[None, :] < np.asarray(parts)[:, None]
    index = np.where(valid, starts[:, None] + columns[None, :], 0)
    return index.astype(np.int32), valid


def part_logits(
    logits: jax.Array, parts: tuple[int, ...], mask: jax.Array | None = None
) -> jax.Array:
    """``logits`` ``[..., sum(parts)]`` as ``[..., len(parts), max(parts)]``,
    one row per part, its padding and illegal actions at the lowest float."""
    index, valid = part_layout(parts)
    legal = valid if mask is None else valid & mask[..., index]
    return masked_logits(logits[..., index], jnp.asarray(legal))


def multi_categorical(
    logits: jax.Array, parts: tuple[int, ...], mask: jax.Array | None = None
) -> distrax.Distribution:
    """Independent Categoricals, part ``i`` over its ``parts[i]`` slice of
    ``logits`` ``[..., sum(parts)]`` (and of ``mask``); actions int32
    ``[..., len(parts)]``, log-probability and entropy summed over parts."""
    per_part = part_logits(logits, parts, mask)
    return distrax.Independent(distrax.Categorical(logits=per_part), 1)


class ActionDistribution(NamedTuple):
    """How the actor's output (and the legal-action mask, if any) becomes
    actions."""

    # (actor output, hparams, mask or None) -> distrax distribution over actions
    dist: Callable[[ActorOutput, Hyperparams, jax.Array | None], distrax.Distribution]
    # (actor output, mask or None) -> deterministic action (Gaussian mean, or
    # int32 argmax over legal actions, per part)
    mode: Callable[[ActorOutput, jax.Array | None], jax.Array]


def _fixed(
    a: ActorOutput, hp: Hyperparams, mask: jax.Array | None = None
) -> distrax.Distribution:
    return fixed_variance_gaussian(a.out, hp.action_variance)


def _learned(
    a: ActorOutput, hp: Hyperparams, mask: jax.Array | None = None
) -> distrax.Distribution:
    assert a.log_std is not None  # the network checks guarantee it
    return learned_std_gaussian(a.out, a.log_std, hp.min_std)


def _categorical(
    a: ActorOutput, hp: Hyperparams, mask: jax.Array | None = None
) -> distrax.Distribution:
    return categorical(a.out, mask)


def _mean(a: ActorOutput, mask: jax.Array | None = None) -> jax.Array:
    return a.out


def _argmax(a: ActorOutput, mask: jax.Array | None = None) -> jax.Array:
    return jnp.argmax(masked_logits(a.out, mask), axis=-1).astype(jnp.int32)


def _multi_discrete(parts: tuple[int, ...]) -> ActionDistribution:
    def dist(
        a: ActorOutput, hp: Hyperparams, mask: jax.Array | None = None
    ) -> distrax.Distribution:
        return multi_categorical(a.out, parts, mask)

    def mode(a: ActorOutput, mask: jax.Array | None = None) -> jax.Array:
        per_part = part_logits(a.out, parts, mask)
        return jnp.argmax(per_part, axis=-1).astype(jnp.int32)

    return ActionDistribution(dist=dist, mode=mode)


def make_action_distribution(
    discrete: bool, policy_std: str | None, parts: tuple[int, ...] = ()
) -> ActionDistribution:
    """Categorical for discrete actions (one per part of ``parts``, a
    MultiDiscrete's ``nvec``); the ``policy_std`` Gaussian otherwise."""
    if discrete and parts:
        return _multi_discrete(parts)
    if discrete:
        return ActionDistribution(dist=_categorical, mode=_argmax)
    return ActionDistribution(
        dist=_learned if policy_std == "learned" else _fixed, mode=_mean
    )
