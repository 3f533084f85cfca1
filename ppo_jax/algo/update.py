"""The update phase: epochs of (mini)batch gradient steps in ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import optax

from ppo_jax.algo.batch import (
    Batch,
    minibatch_unroll,
    shuffled_minibatches,
    shuffled_sequences,
)
from ppo_jax.algo.losses import (
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    value_loss,
)
from ppo_jax.algo.optimizer import (
    AgentState,
    OptimizerGroups,
    ParameterLayout,
    make_optimizer,
    with_adapted_rate,
)
from ppo_jax.algo.policy import Policy
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import PyTree, critic_part
from ppo_jax.networks import ActorCritic, Params, is_recurrent
from ppo_jax.networks.memory import Memory, apply_sequence


class UpdateInfo(NamedTuple):
    """Means over the gradient steps that ran (scalars)."""

    actor_loss: jax.Array  # clipped surrogate (without the entropy bonus)
    critic_loss: jax.Array  # value loss (before vf_coef)
    entropy: jax.Array
    approx_kl: jax.Array
    epochs: jax.Array  # float32, epochs that ran (fewer after a KL stop)


class LossTerms(NamedTuple):
    """One gradient step's loss terms (scalars), means over its minibatch."""

    surrogate: jax.Array  # clipped surrogate (without the entropy bonus)
    value_loss: jax.Array  # before vf_coef
    entropy: jax.Array
    approx_kl: jax.Array


Update: TypeAlias = Callable[
    [AgentState, Batch, jax.Array, Hyperparams], tuple[AgentState, UpdateInfo]
]


def make_update(networks: ActorCritic, policy: Policy, config: PPOConfig) -> Update:
    """Build ``update(agent, batch, key, hparams) -> (agent, UpdateInfo)``.

    Runs ``config.update_epochs`` epochs; each epoch takes ``num_minibatches``
    gradient steps over a fresh permutation of the batch (one step on the whole
    batch when ``num_minibatches == 1``, the tutorial's setting). With
    ``target_kl``, once an epoch's mean approximate KL exceeds it the remaining
    epochs are masked out (computed, not applied: shapes stay static).

    With ``lr_schedule=adaptive_kl`` the rate moves after every gradient step
    or epoch (``lr_adapt_every``), from the KL it measured; a masked epoch
    moves it no more than it moves the parameters.

    With recurrent networks the minibatches are groups of whole env sequences
    (:func:`shuffled_sequences`), each replayed from its stored carries.
    """
    num_minibatches = config.num_minibatches
    adaptive = config.schedule == "adaptive_kl"
    adapt_each_step = adaptive and config.lr_adapt_every == "minibatch"
    adapt_each_epoch = adaptive and config.lr_adapt_every == "epoch"
    unroll = minibatch_unroll(config.batch_size // num_minibatches)
    recurrent = is_recurrent(networks)
    split = shuffled_sequences if recurrent else shuffled_minibatches

    def loss_fn(
        params: tuple[Params, Params], minibatch: Batch, hp: Hyperparams
    ) -> tuple[jax.Array, LossTerms]:
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
        return total, LossTerms(surrogate, v_loss, entropy, kl)

    def grouped_loss(
        group_params: tuple[PyTree, ...],
        networks_of: Callable[[tuple[PyTree, ...]], tuple[Params, Params]],
        minibatch: Batch,
        hp: Hyperparams,
    ) -> tuple[jax.Array, LossTerms]:
        return loss_fn(networks_of(group_params), minibatch, hp)

    grad_fn = jax.grad(grouped_loss, has_aux=True)

    def update(
        agent: AgentState, batch: Batch, key: jax.Array, hp: Hyperparams
    ) -> tuple[AgentState, UpdateInfo]:
        tx = make_optimizer(hp, config)
        layout = ParameterLayout(agent, config.optimizer)

        def gradient_step(
            groups: OptimizerGroups, minibatch: Batch
        ) -> tuple[OptimizerGroups, LossTerms]:
            grads, terms = grad_fn(groups.params, layout.networks, minibatch, hp)
            steps = [tx.update(g, s) for g, s in zip(grads, groups.states, strict=True)]
            params = tuple(
                optax.apply_updates(v, u)
                for v, (u, _) in zip(groups.params, steps, strict=True)
            )
            states = tuple(s for _, s in steps)
            if adapt_each_step:
                # The step ran at the current rate; the KL its forward pass
                # measured sets the next step's.
                states = with_adapted_rate(states, terms.approx_kl, hp)
            return OptimizerGroups(params, states), terms

        def epoch(
            carry: tuple[OptimizerGroups, jax.Array], epoch_key: jax.Array
        ) -> tuple[tuple[OptimizerGroups, jax.Array], tuple[LossTerms, jax.Array]]:
            groups, stopped = carry
            if num_minibatches == 1:
                # Full batch: order does not matter for a mean loss, skip the shuffle.
                new_groups, terms = gradient_step(groups, batch)
            else:
                minibatches = split(epoch_key, batch, num_minibatches)
                new_groups, terms = jax.lax.scan(
                    gradient_step, groups, minibatches, unroll=unroll
                )
                terms = jax.tree.map(jnp.mean, terms)
            if adapt_each_epoch:
                new_groups = new_groups._replace(
                    states=with_adapted_rate(new_groups.states, terms.approx_kl, hp)
                )
            groups = jax.tree.map(
                lambda old, new: jnp.where(stopped, old, new), groups, new_groups
            )
            ran = jnp.logical_not(stopped)
            stopped = jnp.logical_or(stopped, terms.approx_kl > hp.target_kl)
            return (groups, stopped), (terms, ran)

        (groups, _), (terms, ran) = jax.lax.scan(
            epoch,
            (layout.split(agent), jnp.zeros((), jnp.bool_)),
            jax.random.split(key, config.update_epochs),
        )
        weights = ran.astype(jnp.float32)
        epochs = weights.sum()
        actor_loss, critic_loss, entropy, kl = (
            jnp.sum(x * weights) / epochs for x in terms
        )
        info = UpdateInfo(actor_loss, critic_loss, entropy, kl, epochs)
        return layout.merge(agent, groups), info

    return update
