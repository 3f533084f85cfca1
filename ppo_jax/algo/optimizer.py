"""The optimizer and what it updates: the agent's parameters and Adam state.

The update phase sees the agent through :class:`ParameterLayout`: one group
per optimizer (the joint optimizer's ``(actor, critic)``, or actor and critic
apart), each group's parameters as one flat vector with its Adam moments
alike when the networks are small, as their trees otherwise. Checkpoints
always hold the tree layout of :class:`AgentState`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import PyTree
from ppo_jax.networks import Params


@struct.dataclass
class AgentState:
    """Parameters and optimizer state(s) of actor and critic.

    ``opt_state`` is ``(actor_state, critic_state)`` with separate optimizers,
    or the one state of the joint optimizer over ``(actor, critic)``.
    """

    actor_params: Params
    critic_params: Params
    opt_state: optax.OptState


def clip_gradients(hp: Hyperparams) -> optax.GradientTransformation:
    """Scale all gradients together so that their *global* norm is at most
    ``max_grad_norm`` (not element by element); ``inf`` leaves them exactly."""
    return optax.clip_by_global_norm(hp.max_grad_norm)


def make_optimizer(hp: Hyperparams, config: PPOConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam (torch's formula) at the learning rate of
    ``config.schedule``.

    Built inside the traced function from (possibly traced) hyperparameters;
    the optimizer *state* does not depend on them, so it can be checkpointed
    and resumed. ``max_grad_norm=inf`` (no clipping) leaves gradients exactly
    unchanged. ``linear`` and ``cosine`` rates are functions of the number of
    gradient steps taken (:func:`scheduled_rate`); the ``adaptive_kl`` rate is
    state (:class:`AdaptiveRateState`), moved by :func:`adapt_rate`.
    """
    schedule = config.schedule
    if schedule == "adaptive_kl":
        return optax.chain(
            clip_gradients(hp),
            optax.scale_by_adam(eps=hp.adam_eps),
            scale_by_adaptive_rate(hp.lr),
        )
    total = config.num_gradient_steps

    def rate(count: jax.Array) -> jax.Array:
        return scheduled_rate(count, hp, schedule, total)

    lr = hp.lr if schedule == "constant" else rate
    return optax.chain(clip_gradients(hp), optax.adam(lr, eps=hp.adam_eps))


def scheduled_rate(
    count: jax.Array, hp: Hyperparams, schedule: str, total: int
) -> jax.Array:
    """The rate of gradient step ``count`` (0-based) of ``total``.

    - ``constant``: ``lr``;
    - ``linear``: ``lr * (1 - count / total)``;
    - ``cosine``: over the first ``W = lr_warmup * total`` steps
      ``lr * (count + 1) / W`` (never 0), then
      ``lr * (1 + cos(pi * (count - W) / (total - W))) / 2``.
    """
    count = jnp.minimum(count, total).astype(jnp.float32)
    if schedule == "linear":
        # max: x / total may round to x * (1 / total) > 1 at the end.
        return hp.lr * jnp.maximum(1.0 - count / total, 0.0)
    if schedule == "cosine":
        warm = hp.lr_warmup * total
        rising = hp.lr * jnp.minimum((count + 1.0) / jnp.maximum(warm, 1e-6), 1.0)
        progress = (count - warm) / jnp.maximum(total - warm, 1.0)
        falling = hp.lr * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(progress, 0.0, 1.0)))
        return jnp.where(count < warm, rising, falling)
    return jnp.asarray(hp.lr, jnp.float32)


class AdaptiveRateState(NamedTuple):
    """The ``adaptive_kl`` schedule's learning rate (float32 scalar), the one
    the next gradient step uses; checkpointed with the optimizer state."""

    rate: jax.Array


def scale_by_adaptive_rate(initial: jax.Array) -> optax.GradientTransformation:
    """Multiply updates by ``-rate`` (a descent step), ``rate`` read from the
    state (starting at ``initial``) and changed only by :func:`adapt_rate`."""

    def init(params: PyTree) -> AdaptiveRateState:
        del params
        return AdaptiveRateState(jnp.asarray(initial, jnp.float32))

    def update(
        updates: PyTree, state: AdaptiveRateState, params: PyTree | None = None
    ) -> tuple[PyTree, AdaptiveRateState]:
        del params
        return jax.tree.map(lambda u: -state.rate * u, updates), state

    return optax.GradientTransformation(init, update)


def adapt_rate(rate: jax.Array, kl: jax.Array, hp: Hyperparams) -> jax.Array:
    """The adaptive-KL rule: ``rate / lr_factor`` when ``kl > lr_kl_target *
    lr_kl_margin``, ``rate * lr_factor`` when ``kl < lr_kl_target /
    lr_kl_margin``, else ``rate``; then clipped to ``[lr_min, lr_max]``. A NaN
    KL leaves the rate."""
    high = kl > hp.lr_kl_target * hp.lr_kl_margin
    low = kl < hp.lr_kl_target / hp.lr_kl_margin
    raised = jnp.where(low, rate * hp.lr_factor, rate)
    moved = jnp.where(high, rate / hp.lr_factor, raised)
    return jnp.clip(moved, hp.lr_min, hp.lr_max)


def _is_rate(x: object) -> bool:
    return isinstance(x, AdaptiveRateState)


def with_adapted_rate(
    states: tuple[optax.OptState, ...], kl: jax.Array, hp: Hyperparams
) -> tuple[optax.OptState, ...]:
    """``states`` with every :class:`AdaptiveRateState` moved by
    :func:`adapt_rate` (actor and critic alike with separate optimizers)."""
    return jax.tree.map(
        lambda x: AdaptiveRateState(adapt_rate(x.rate, kl, hp)) if _is_rate(x) else x,
        states,
        is_leaf=_is_rate,
    )


def current_rate(
    opt_state: optax.OptState, hp: Hyperparams, config: PPOConfig
) -> jax.Array:
    """The rate the next gradient step of an agent with ``opt_state`` uses
    (float32 scalar): the metrics' ``learning_rate``."""
    schedule = config.schedule
    if schedule == "adaptive_kl":
        found = [x for x in jax.tree.leaves(opt_state, is_leaf=_is_rate) if _is_rate(x)]
        return found[0].rate
    if schedule == "constant":
        return jnp.asarray(hp.lr, jnp.float32)
    adam = [
        x
        for x in jax.tree.leaves(opt_state, is_leaf=_is_adam)
        if isinstance(x, optax.ScaleByAdamState)
    ]
    return scheduled_rate(adam[0].count, hp, schedule, config.num_gradient_steps)


def _is_adam(x: object) -> bool:
    return isinstance(x, optax.ScaleByAdamState)


def init_agent(
    actor_params: Params, critic_params: Params, hp: Hyperparams, config: PPOConfig
) -> AgentState:
    tx = make_optimizer(hp, config)
    if config.optimizer == "joint":
        opt_state = tx.init((actor_params, critic_params))
    else:
        opt_state = (tx.init(actor_params), tx.init(critic_params))
    return AgentState(actor_params, critic_params, opt_state)


# Up to this many floats over all parameters, the gradient steps work on each
# optimizer's parameters as one flat vector (its Adam moments too). A step
# then costs mostly per-operation overhead, and per-leaf clipping, moments and
# updates are ~4 operations for each of ~13 leaves (64-wide matched
# configuration: 98 -> 87 us a step on the 2-core CPU). Larger networks keep
# their leaves: XLA fuses each leaf's Adam into one pass, the flat vector takes
# several (256-wide: 590 -> 900 us). Same arithmetic, elementwise; the global
# norm sums in another order.
FLAT_PARAMETERS_MAX = 32_768


class OptimizerGroups(NamedTuple):
    """What the gradient steps carry: per optimizer, its parameters (a flat
    vector or a tree) and its state (moments laid out alike)."""

    params: tuple[PyTree, ...]
    states: tuple[optax.OptState, ...]


class ParameterLayout:
    """How an :class:`AgentState` maps to :class:`OptimizerGroups` and back.

    Built at trace time from the agent's shapes; ``flat`` says whether the
    groups are flat vectors (at most :data:`FLAT_PARAMETERS_MAX` floats).
    """

    def __init__(self, agent: AgentState, optimizer: str):
        self.joint = optimizer == "joint"
        trees = self._trees(agent)
        self.flat = sum(x.size for x in jax.tree.leaves(trees)) <= FLAT_PARAMETERS_MAX
        self._unravels = [ravel_pytree(tree)[1] for tree in trees]

    def _trees(self, agent: AgentState) -> tuple[Params, ...]:
        if self.joint:
            return ((agent.actor_params, agent.critic_params),)
        return (agent.actor_params, agent.critic_params)

    def _states(self, agent: AgentState) -> tuple[optax.OptState, ...]:
        return (agent.opt_state,) if self.joint else tuple(agent.opt_state)

    def split(self, agent: AgentState) -> OptimizerGroups:
        """The agent's parameters and optimizer state(s), grouped."""
        trees, states = self._trees(agent), self._states(agent)
        if not self.flat:
            return OptimizerGroups(trees, states)
        flat = tuple(ravel_pytree(tree)[0] for tree in trees)
        return OptimizerGroups(flat, tuple(map(_flatten_state, trees, states)))

    def networks(self, params: tuple[PyTree, ...]) -> tuple[Params, Params]:
        """``(actor, critic)`` parameter trees of the groups' ``params``."""
        if self.flat:
            params = tuple(u(v) for u, v in zip(self._unravels, params, strict=True))
        if self.joint:
            actor, critic = params[0]
            return actor, critic
        return params[0], params[1]

    def merge(self, agent: AgentState, groups: OptimizerGroups) -> AgentState:
        """``agent`` (its tree layout, as checkpoints hold it) with the groups'
        values."""
        actor_params, critic_params = self.networks(groups.params)
        states = groups.states
        if self.flat:
            trees, old = self._trees(agent), self._states(agent)
            states = tuple(map(_unflatten_state, trees, old, states))
        opt_state = states[0] if self.joint else states
        return AgentState(actor_params, critic_params, opt_state)


def _like(group: Params) -> Callable[[PyTree], bool]:
    """Is a subtree shaped like ``group`` (a moment of an optimizer's state)?"""
    structure: Any = jax.tree.structure(group)
    return lambda x: bool(jax.tree.structure(x) == structure)


def _flatten_state(group: Params, state: optax.OptState) -> optax.OptState:
    """``state`` with every subtree shaped like ``group`` as one flat vector."""
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
