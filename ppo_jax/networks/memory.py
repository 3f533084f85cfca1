"""Memory: the carries of recurrent networks, kept between steps.

A :class:`~ppo_jax.networks.RecurrentNetwork` reads one observation and its
carry per step. ppo_jax keeps each network's carry per environment in
:class:`Memory` (part of the env batch, so it is checkpointed and resumed with
the run), restarts it at every episode start, and in the update replays each
environment's stored sequence from the carry it had at the rollout's start.
A feedforward :class:`~ppo_jax.networks.Network` has the empty carry ``()``,
so the same code serves both kinds.

Conventions: ``first[t]`` is True where observation ``t`` starts an episode;
the carry is restarted (``initial_carry``) *before* that observation is read.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.envs.contract import PyTree, select_where
from ppo_jax.networks import ActorCritic, AnyNetwork, Network, Params

OutT = TypeVar("OutT")


@struct.dataclass
class Memory:
    """Each network's carry for ``N`` environments, ready for their current
    observations (restarted where an episode has just begun); ``()`` for a
    network without memory."""

    actor: PyTree  # leaves [N, ...]
    critic: PyTree  # leaves [N, ...]


def initial_carry(network: AnyNetwork[Any], batch_shape: tuple[int, ...]) -> PyTree:
    """The carry at an episode start, ``[*batch_shape, ...]`` (``()``: none)."""
    if isinstance(network, Network):
        return ()
    return network.initial_carry(batch_shape)


def initial_memory(networks: ActorCritic, num_envs: int) -> Memory:
    return Memory(
        actor=initial_carry(networks.actor, (num_envs,)),
        critic=initial_carry(networks.critic, (num_envs,)),
    )


def restart(network: AnyNetwork[Any], carry: PyTree, first: jax.Array) -> PyTree:
    """``carry`` with the initial carry where ``first`` ``[...]`` is True."""
    if isinstance(network, Network):
        return carry
    return select_where(first, network.initial_carry(first.shape), carry)


def network_step(
    network: AnyNetwork[OutT], params: Params, carry: PyTree, obs: jax.Array
) -> tuple[PyTree, OutT]:
    """One step on ``[..., *obs_shape]``: ``(next carry, output)``."""
    if isinstance(network, Network):
        return carry, network.apply(params, obs)
    return network.step(params, carry, obs)


def apply_sequence(
    network: AnyNetwork[OutT],
    params: Params,
    carry: PyTree,
    obs: jax.Array,
    first: jax.Array | None,
) -> tuple[PyTree, OutT]:
    """Run ``network`` over time-major observations ``[T, n, *obs_shape]``.

    ``carry`` ``[n, ...]`` is the carry before step 0, ``first`` ``[T, n]`` marks
    episode starts (restart before reading; a feedforward network reads
    neither, and then takes observations with any leading axes). Returns
    ``(carries, outputs)``: the carry *after* each step ``[T, n, ...]``
    (before any restart; ``()`` without memory) and the outputs ``[T, n,
    ...]``. A feedforward network is applied to the whole sequence at once.
    """
    if isinstance(network, Network):
        return (), network.apply(params, obs)
    if first is None:
        raise ValueError("a network with memory needs the episode starts")
    if network.sequence is not None:
        return network.sequence(params, carry, obs, first)

    def step(carry: PyTree, inputs: tuple[jax.Array, jax.Array]) -> Any:
        obs_t, first_t = inputs
        carry, out = network.step(params, restart(network, carry, first_t), obs_t)
        return carry, (carry, out)

    _, (carries, outputs) = jax.lax.scan(step, carry, (obs, first))
    return carries, outputs


def episode_starts(done: jax.Array) -> jax.Array:
    """``first`` ``[T, N]`` of a rollout from its ``done`` ``[T, N]``: step ``t``
    starts an episode where step ``t - 1`` ended one. Step 0 is never marked:
    the stored carry at a rollout's start has been restarted already."""
    return jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]])
