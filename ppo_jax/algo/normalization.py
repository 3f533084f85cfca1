"""Running mean/variance statistics for observation and reward normalization.

The statistics live in the runner state (so they are checkpointed and used by
evaluation), are updated with every batch of ``N`` new values (Chan et al.'s
parallel update, as gym's ``RunningMeanStd``), and normalized values are clipped
to +-10 as in gym's normalization wrappers.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.envs.contract import AsymmetricObservation, MaskedObservation

CLIP = 10.0
EPS = 1e-8


@struct.dataclass
class RunningMeanStd:
    mean: jax.Array  # [*shape] float32
    var: jax.Array  # [*shape] float32, population variance
    count: jax.Array  # float32 scalar; starts at 1e-4 as gym's


def init_running_stats(shape: tuple[int, ...]) -> RunningMeanStd:
    return RunningMeanStd(
        mean=jnp.zeros(shape, jnp.float32),
        var=jnp.ones(shape, jnp.float32),
        count=jnp.asarray(1e-4, jnp.float32),
    )


def update_running_stats(stats: RunningMeanStd, batch: jax.Array) -> RunningMeanStd:
    """Merge a batch ``[N, *shape]`` into the statistics."""
    batch = batch.astype(jnp.float32)
    n = jnp.asarray(batch.shape[0], jnp.float32)
    batch_mean = batch.mean(axis=0)
    batch_var = batch.var(axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + batch_var * n + delta**2 * stats.count * n / total
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def init_observation_stats(obs: Any) -> Any:
    """Statistics for a batch of observations ``[N, *shape]``, of the same
    structure: a :class:`RunningMeanStd` of the leaf's ``shape`` for an array
    observation (whatever its dtype, as gym's wrapper), for each part of an
    ``AsymmetricObservation``, and for each *float* leaf of a structured
    observation (a dict or tuple of arrays: integer ids and boolean flags are
    not measurements); ``()`` (nothing, never normalized) for its other leaves
    and for an action mask."""
    if isinstance(obs, MaskedObservation):
        return MaskedObservation(init_observation_stats(obs.obs), ())
    if isinstance(obs, AsymmetricObservation):
        return AsymmetricObservation(*map(init_observation_stats, obs))
    if hasattr(obs, "shape"):
        return init_running_stats(obs.shape[1:])

    def leaf_stats(x: Any) -> Any:
        floating = jnp.issubdtype(x.dtype, jnp.floating)
        return init_running_stats(x.shape[1:]) if floating else ()

    return jax.tree.map(leaf_stats, obs)


def update_observation_stats(stats: Any, obs: Any) -> Any:
    """:func:`update_running_stats` for every leaf of ``obs`` ``[N, ...]``
    that has statistics."""

    def update(x: jax.Array, s: Any) -> Any:
        return update_running_stats(s, x) if isinstance(s, RunningMeanStd) else s

    return jax.tree.map(update, obs, stats)


def normalize_observation(obs: Any, stats: Any) -> Any:
    """:func:`normalize` for every leaf of ``obs`` that has statistics; the
    others (ids, flags, the action mask) as they are."""

    def norm(x: jax.Array, s: Any) -> jax.Array:
        return normalize(x, s) if isinstance(s, RunningMeanStd) else x

    return jax.tree.map(norm, obs, stats)


def normalize(x: jax.Array, stats: RunningMeanStd) -> jax.Array:
    """``clip((x - mean) / sqrt(var + 1e-8), -10, 10)``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + EPS), -CLIP, CLIP)


def scale(x: jax.Array, stats: RunningMeanStd) -> jax.Array:
    """``clip(x / sqrt(var + 1e-8), -10, 10)``: reward scaling, no centring."""
    return jnp.clip(x / jnp.sqrt(stats.var + EPS), -CLIP, CLIP)
