"""The training batch and its shuffled minibatches.

The permutation is a sort of packed random keys, tuned for XLA's CPU sort;
small minibatches take two gradient steps per iteration of the minibatch scan
on a CPU (:func:`minibatch_unroll`): both choices are measured below and leave
the arithmetic of the update unchanged.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import jax
import jax.numpy as jnp

from ppo_jax.algo.policy import Observation
from ppo_jax.networks.memory import Memory

Tree = TypeVar("Tree")


class Batch(NamedTuple):
    """Flat training batch, ``B = rollout_length * num_envs`` samples.

    With recurrent networks the batch stays time-major, ``[T, N, ...]`` in
    place of ``[B, ...]``, and carries what a replay of each env's sequence
    needs: ``first`` and the networks' carries at the rollout's start."""

    obs: Observation  # [B, *obs_shape] as the actor saw it (and the critic)
    action: jax.Array  # [B, action_dim] float32 or [B] int32
    old_log_prob: jax.Array  # [B]
    advantage: jax.Array  # [B] normalized advantage
    target: jax.Array  # [B] value target
    old_value: jax.Array  # [B] critic's value at rollout time
    first: jax.Array | None = None  # [T, N] bool: obs starts an episode
    memory: Memory | None = None  # carries [N, ...] before step 0


# Up to this many samples a permutation sorts one array of packed keys.
PACKED_PERMUTATION_MAX = 2**16


def random_permutation(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of ``arange(n)`` (int32 ``[n]``): the order of
    ``n`` random numbers, with ties kept in index order.

    Up to ``PACKED_PERMUTATION_MAX`` samples each index sits in the low
    ``ceil(log2 n)`` bits of a uint32 whose high bits (16 or more) are random,
    and one array is sorted: XLA's CPU sort of a single uint32 array is
    about 5x faster than an argsort, which sorts keys and indices together
    (2048 samples: 79 vs 332 us on the 2-core CPU, benchmarks/kernels.py;
    the matched configuration sorts 4 times an iteration). Equal random parts, which
    keep index order, have probability ``2**-(32 - ceil(log2 n))`` per
    pair (``2**-21`` for 2048). Larger ``n`` argsorts 32 random bits.
    """
    random_bits = jax.random.bits(key, (n,), jnp.uint32)
    if n <= PACKED_PERMUTATION_MAX:
        index_bits = max(n - 1, 1).bit_length()
        packed = (random_bits << index_bits) | jnp.arange(n, dtype=jnp.uint32)
        return (jnp.sort(packed) & ((1 << index_bits) - 1)).astype(jnp.int32)
    return jnp.argsort(random_bits).astype(jnp.int32)


def shuffled_minibatches(key: jax.Array, batch: Tree, num_minibatches: int) -> Tree:
    """Split every ``[B, ...]`` leaf of ``batch`` into ``[M, B // M, ...]``.

    One fresh permutation of the ``B`` samples per call: each sample lands in
    exactly one minibatch. ``B`` must be divisible by ``M`` (config validation
    guarantees it).
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    permutation = random_permutation(key, size)
    return jax.tree.map(
        lambda x: x[permutation].reshape(
            (num_minibatches, size // num_minibatches) + x.shape[1:]
        ),
        batch,
    )


def shuffled_sequences(key: jax.Array, batch: Batch, num_minibatches: int) -> Batch:
    """Split a time-major batch over its envs: ``[T, N, ...]`` leaves into
    ``[M, T, N // M, ...]`` and the carries ``[N, ...]`` into ``[M, N // M,
    ...]``, with one fresh permutation of the ``N`` envs: each env's whole
    sequence lands in exactly one minibatch."""
    n = batch.action.shape[1]
    permutation = random_permutation(key, n)
    size = n // num_minibatches

    def time_major(x: jax.Array) -> jax.Array:
        x = x[:, permutation].reshape(
            x.shape[:1] + (num_minibatches, size) + x.shape[2:]
        )
        return jnp.moveaxis(x, 1, 0)

    def env_major(x: jax.Array) -> jax.Array:
        return x[permutation].reshape((num_minibatches, size) + x.shape[1:])

    sequences = jax.tree.map(time_major, batch._replace(memory=None))
    return sequences._replace(memory=jax.tree.map(env_major, batch.memory))


# On a CPU, minibatches of at most this many samples take two gradient steps
# per iteration of the minibatch loop (lax.scan's unroll=2). Their steps are
# short (~75 us for the 64-wide matched configuration's 64 samples), and the
# loop's cost per iteration showed: that configuration trained 1.12x faster
# and the 256-wide one 1.06x (medians of 7 and 3 alternating pairs of fresh
# processes timing jax.jit(make_train(config)) as benchmarks/versus.py does;
# 2-core CPU). 256-sample minibatches (tuned Pendulum, CartPole), MinAtar's
# CNN and the GRU showed no gain, unroll=4 was slower than 2, and 16 vmapped
# seeds of the 64-wide configuration lost nothing (0.98-1.08). Measured on
# CPUs only.
MINIBATCH_UNROLL_MAX_SAMPLES = 128


def minibatch_unroll(minibatch_samples: int) -> int:
    """Gradient steps per iteration of the minibatch ``lax.scan``: 2 for
    minibatches of at most ``MINIBATCH_UNROLL_MAX_SAMPLES`` samples on a
    CPU, else 1. The same steps either way (equal up to float rounding)."""
    small = minibatch_samples <= MINIBATCH_UNROLL_MAX_SAMPLES
    return 2 if small and jax.default_backend() == "cpu" else 1
