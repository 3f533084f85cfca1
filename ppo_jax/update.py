"""The update phase: epochs of (mini)batch gradient steps in ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import PyTree, critic_part
from ppo_jax.losses import (
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    value_loss,
)
from ppo_jax.memory import Memory, apply_sequence
from ppo_jax.networks import ActorCritic, Params, is_recurrent
from ppo_jax.policy import Observation, Policy


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


class UpdateInfo(NamedTuple):
    """Means over the gradient steps that ran (scalars)."""

    actor_loss: jax.Array  # clipped surrogate (without the entropy bonus)
    critic_loss: jax.Array  # value loss (before vf_coef)
    entropy: jax.Array
    approx_kl: jax.Array
    epochs: jax.Array  # float32, epochs that ran (fewer after a KL stop)


@struct.dataclass
class AgentState:
    """Parameters and optimizer state(s) of actor and critic.

    ``opt_state`` is ``(actor_state, critic_state)`` with separate optimizers,
    or the one state of the joint optimizer over ``(actor, critic)``.
    """

    actor_params: Params
    critic_params: Params
    opt_state: optax.OptState


Update: TypeAlias = Callable[
    [AgentState, Batch, jax.Array, Hyperparams], tuple[AgentState, UpdateInfo]
]
Tree = TypeVar("Tree")


def clip_gradients(hp: Hyperparams) -> optax.GradientTransformation:
    """Scale all gradients together so that their *global* norm is at most
    ``max_grad_norm`` (not element by element); ``inf`` leaves them exactly."""
    return optax.clip_by_global_norm(hp.max_grad_norm)


def make_optimizer(hp: Hyperparams, config: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam (torch's formula).

    Built inside the traced function from (possibly traced) hyperparameters;
    the optimizer *state* does not depend on them, so it can be checkpointed
    and resumed. ``max_grad_norm=inf`` (no clipping) leaves gradients exactly
    unchanged. With ``anneal_lr`` the rate falls linearly to 0 over
    ``config.num_gradient_steps``.
    """
    total = config.num_gradient_steps

    def annealed(count: jax.Array) -> jax.Array:
        return hp.lr * (1.0 - jnp.minimum(count, total) / total)

    lr = annealed if config.anneal_lr else hp.lr
    return optax.chain(clip_gradients(hp), optax.adam(lr, eps=hp.adam_eps))


def init_agent(
    actor_params: Params, critic_params: Params, hp: Hyperparams, config: PPOConfig
) -> AgentState:
    tx = make_optimizer(hp, config)
    if config.optimizer == "joint":
        opt_state = tx.init((actor_params, critic_params))
    else:
        opt_state = (tx.init(actor_params), tx.init(critic_params))
    return AgentState(actor_params, critic_params, opt_state)


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


def make_update(networks: ActorCritic, policy: Policy, config: PPOConfig) -> Update:
    """Build ``update(agent, batch, key, hparams) -> (agent, UpdateInfo)``.

    Runs ``config.update_epochs`` epochs; each epoch takes ``num_minibatches``
    gradient steps over a fresh permutation of the batch (one step on the whole
    batch when ``num_minibatches == 1``, the tutorial's setting). With
    ``target_kl``, once an epoch's mean approximate KL exceeds it the remaining
    epochs are masked out (computed, not applied: shapes stay static).

    With recurrent networks the minibatches are groups of whole env sequences
    (:func:`shuffled_sequences`), each replayed from its stored carries.
    """
    num_minibatches = config.num_minibatches
    unroll = minibatch_unroll(config.batch_size // num_minibatches)
    recurrent = is_recurrent(networks)
    split = shuffled_sequences if recurrent else shuffled_minibatches

    def loss_fn(
        params: tuple[Params, Params], minibatch: Batch, hp: Hyperparams
    ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        actor_params, critic_params = params
        # Feedforward networks read [B] samples at once (no carries, no first);
        # recurrent ones replay [T, n] sequences from their stored carries.
        memory = minibatch.memory if recurrent else Memory((), ())
        assert memory is not None
        first = minibatch.first
        dist = policy.sequence_dist(
            actor_params, minibatch.obs, first, memory.actor, hp
        )
        _, values = apply_sequence(
            networks.critic,
            critic_params,
            memory.critic,
            critic_part(minibatch.obs),
            first,
        )
        log_prob = dist.log_prob(minibatch.action)
        surrogate = clipped_surrogate_loss(
            log_prob, minibatch.old_log_prob, minibatch.advantage, hp.clip_eps
        )
        entropy = jnp.mean(dist.entropy())
        if config.clip_value:
            v_loss = clipped_value_loss(
                values, minibatch.old_value, minibatch.target, hp.clip_eps
            )
        else:
            v_loss = value_loss(values, minibatch.target)
        # Actor and critic terms depend on disjoint parameters, so one gradient
        # of the sum is exactly the two separate gradients the tutorial takes.
        total = surrogate - hp.ent_coef * entropy + hp.vf_coef * v_loss
        kl = approx_kl(jax.lax.stop_gradient(log_prob), minibatch.old_log_prob)
        return total, (surrogate, v_loss, entropy, kl)

    def flat_loss(
        flat: tuple[PyTree, ...],
        unravel: Callable[[tuple[PyTree, ...]], tuple[Params, Params]],
        minibatch: Batch,
        hp: Hyperparams,
    ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        return loss_fn(unravel(flat), minibatch, hp)

    grad_fn = jax.grad(flat_loss, has_aux=True)

    def update(
        agent: AgentState, batch: Batch, key: jax.Array, hp: Hyperparams
    ) -> tuple[AgentState, UpdateInfo]:
        tx = make_optimizer(hp, config)
        # Small networks: the gradient steps work on each optimizer's
        # parameters as one flat vector (its Adam moments too). A step then
        # costs mostly per-operation overhead, and per-leaf clipping, moments
        # and updates are ~4 operations for each of ~13 leaves (64-wide
        # matched configuration: 98 -> 87 us a step on the 2-core CPU). Large
        # ones keep their leaves: XLA fuses each leaf's Adam into one pass, the
        # flat vector takes several (256-wide: 590 -> 900 us). Same arithmetic,
        # elementwise; the global norm sums in another order.
        size = sum(x.size for x in jax.tree.leaves(_groups(agent, config.optimizer)))
        if size <= FLAT_PARAMETERS_MAX:
            flat, unravel = _flatten_groups(agent, config.optimizer)
            flat_states = _flatten_states(agent, config.optimizer)
        else:
            flat = _groups(agent, config.optimizer)
            unravel = _regroup(config.optimizer)
            flat_states = _states(agent, config.optimizer)

        def gradient_step(
            carry: FlatAgent, minibatch: Batch
        ) -> tuple[FlatAgent, tuple[jax.Array, ...]]:
            flat, states = carry
            grads, info = grad_fn(flat, unravel, minibatch, hp)
            steps = [tx.update(g, s) for g, s in zip(grads, states, strict=True)]
            flat = tuple(
                optax.apply_updates(v, u) for v, (u, _) in zip(flat, steps, strict=True)
            )
            return (flat, tuple(s for _, s in steps)), info

        def epoch(
            carry: tuple[FlatAgent, jax.Array], epoch_key: jax.Array
        ) -> tuple[
            tuple[FlatAgent, jax.Array], tuple[tuple[jax.Array, ...], jax.Array]
        ]:
            agent, stopped = carry
            if num_minibatches == 1:
                # Full batch: order does not matter for a mean loss, skip the shuffle.
                new_agent, info = gradient_step(agent, batch)
            else:
                minibatches = split(epoch_key, batch, num_minibatches)
                new_agent, info = jax.lax.scan(
                    gradient_step, agent, minibatches, unroll=unroll
                )
                info = jax.tree.map(jnp.mean, info)
            agent = jax.tree.map(
                lambda old, new: jnp.where(stopped, old, new), agent, new_agent
            )
            ran = jnp.logical_not(stopped)
            stopped = jnp.logical_or(stopped, info[3] > hp.target_kl)
            return (agent, stopped), (info, ran)

        ((flat, flat_states), _), (info, ran) = jax.lax.scan(
            epoch,
            ((flat, flat_states), jnp.zeros((), jnp.bool_)),
            jax.random.split(key, config.update_epochs),
        )
        if size <= FLAT_PARAMETERS_MAX:
            agent = _unflatten_agent(
                agent, flat, flat_states, unravel, config.optimizer
            )
        else:
            opt_state = flat_states[0] if config.optimizer == "joint" else flat_states
            agent = AgentState(*unravel(flat), opt_state)
        weights = ran.astype(jnp.float32)
        epochs = weights.sum()
        actor_loss, critic_loss, entropy, kl = (
            jnp.sum(x * weights) / epochs for x in info
        )
        return agent, UpdateInfo(actor_loss, critic_loss, entropy, kl, epochs)

    return update


# Each optimizer's parameters as one flat vector, and its state with every
# parameter-shaped subtree (Adam's moments) flattened alike: one group
# (actor, critic) with the joint optimizer, two groups with separate ones.
# (Above FLAT_PARAMETERS_MAX floats the groups keep their tree layout.)
FlatAgent: TypeAlias = tuple[tuple[PyTree, ...], tuple[optax.OptState, ...]]
FLAT_PARAMETERS_MAX = 32_768


def _regroup(
    optimizer: str,
) -> Callable[[tuple[PyTree, ...]], tuple[Params, Params]]:
    """``groups -> (actor, critic)`` for groups kept as trees."""

    def regroup(groups: tuple[PyTree, ...]) -> tuple[Params, Params]:
        if optimizer == "joint":
            actor, critic = groups[0]
            return actor, critic
        return groups[0], groups[1]

    return regroup


def _groups(agent: AgentState, optimizer: str) -> tuple[Params, ...]:
    if optimizer == "joint":
        return ((agent.actor_params, agent.critic_params),)
    return (agent.actor_params, agent.critic_params)


def _flatten_groups(
    agent: AgentState, optimizer: str
) -> tuple[
    tuple[jax.Array, ...], Callable[[tuple[jax.Array, ...]], tuple[Params, Params]]
]:
    """``(flat vectors, unravel)``; ``unravel(flat) -> (actor, critic)``."""
    raveled = [ravel_pytree(group) for group in _groups(agent, optimizer)]
    unravels = [u for _, u in raveled]

    def unravel(flat: tuple[jax.Array, ...]) -> tuple[Params, Params]:
        groups = [u(v) for u, v in zip(unravels, flat, strict=True)]
        if optimizer == "joint":
            return groups[0]
        return groups[0], groups[1]

    return tuple(v for v, _ in raveled), unravel


def _states(agent: AgentState, optimizer: str) -> tuple[optax.OptState, ...]:
    return (agent.opt_state,) if optimizer == "joint" else tuple(agent.opt_state)


def _like(group: Params) -> Callable[[PyTree], bool]:
    """Is a subtree shaped like ``group`` (a moment of an optimizer's state)?"""
    structure: Any = jax.tree.structure(group)
    return lambda x: bool(jax.tree.structure(x) == structure)


def _flatten_state(group: Params, state: optax.OptState) -> optax.OptState:
    like = _like(group)
    return jax.tree.map(
        lambda x: ravel_pytree(x)[0] if like(x) else x, state, is_leaf=like
    )


def _unflatten_state(
    group: Params, state: optax.OptState, flat_state: optax.OptState
) -> optax.OptState:
    """``flat_state``'s values in ``state``'s layout."""
    like, unravel = _like(group), ravel_pytree(group)[1]
    return jax.tree.map(
        lambda old, new: unravel(new) if like(old) else new,
        state,
        flat_state,
        is_leaf=like,
    )


def _flatten_states(agent: AgentState, optimizer: str) -> tuple[optax.OptState, ...]:
    groups, states = _groups(agent, optimizer), _states(agent, optimizer)
    return tuple(map(_flatten_state, groups, states))


def _unflatten_agent(
    agent: AgentState,
    flat: tuple[jax.Array, ...],
    flat_states: tuple[optax.OptState, ...],
    unravel: Callable[[tuple[jax.Array, ...]], tuple[Params, Params]],
    optimizer: str,
) -> AgentState:
    """``agent`` (its tree layout, as checkpoints hold it) with new values."""
    actor_params, critic_params = unravel(flat)
    groups, states = _groups(agent, optimizer), _states(agent, optimizer)
    new_states = tuple(map(_unflatten_state, groups, states, flat_states))
    opt_state = new_states[0] if optimizer == "joint" else new_states
    return AgentState(actor_params, critic_params, opt_state)
