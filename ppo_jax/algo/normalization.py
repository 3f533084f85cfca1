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
    """One :class:`RunningMeanStd` per leaf of a batch of observations
    ``[N, *shape]`` (one for an array; actor and critic parts of an
    ``AsymmetricObservation``), with the leaf's ``shape``."""
    return jax.tree.map(lambda x: init_running_stats(x.shape[1:]), obs)


def update_observation_stats(stats: Any, obs: Any) -> Any:
    """:func:`update_running_stats` for every leaf of ``obs`` ``[N, ...]``."""
    return jax.tree.map(lambda x, s: update_running_stats(s, x), obs, stats)


def normalize_observation(obs: Any, stats: Any) -> Any:
    """:func:`normalize` for every leaf of ``obs`` with its own statistics."""
    return jax.tree.map(lambda x, s: normalize(x, s), obs, stats)


def normalize(x: jax.Array, stats: RunningMeanStd) -> jax.Array:
    """``clip((x - mean) / sqrt(var + 1e-8), -10, 10)``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + EPS), -CLIP, CLIP)


def scale(x: jax.Array, stats: RunningMeanStd) -> jax.Array:
    """``clip(x / sqrt(var + 1e-8), -10, 10)``: reward scaling, no centring."""
    return jnp.clip(x / jnp.sqrt(stats.var + EPS), -CLIP, CLIP)
