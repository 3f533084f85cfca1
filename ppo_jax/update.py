"""The update phase: epochs of (mini)batch gradient steps in ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeAlias, TypeVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import critic_part
from ppo_jax.losses import (
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    value_loss,
)
from ppo_jax.networks import ActorCritic, Params
from ppo_jax.policy import Observation, Policy


class Batch(NamedTuple):
    """Flat training batch, ``B = rollout_length * num_envs`` samples."""

    obs: Observation  # [B, *obs_shape] as the actor saw it (and the critic)
    action: jax.Array  # [B, action_dim] float32 or [B] int32
    old_log_prob: jax.Array  # [B]
    advantage: jax.Array  # [B] normalized advantage
    target: jax.Array  # [B] value target
    old_value: jax.Array  # [B] critic's value at rollout time


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


def shuffled_minibatches(key: jax.Array, batch: Tree, num_minibatches: int) -> Tree:
    """Split every ``[B, ...]`` leaf of ``batch`` into ``[M, B // M, ...]``.

    One fresh permutation of the ``B`` samples per call: each sample lands in
    exactly one minibatch. ``B`` must be divisible by ``M`` (config validation
    guarantees it).
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    permutation = jax.random.permutation(key, size)
    return jax.tree.map(
        lambda x: x[permutation].reshape(
            (num_minibatches, size // num_minibatches) + x.shape[1:]
        ),
        batch,
    )


def make_update(networks: ActorCritic, policy: Policy, config: PPOConfig) -> Update:
    """Build ``update(agent, batch, key, hparams) -> (agent, UpdateInfo)``.

    Runs ``config.update_epochs`` epochs; each epoch takes ``num_minibatches``
    gradient steps over a fresh permutation of the batch (one step on the whole
    batch when ``num_minibatches == 1``, the tutorial's setting). With
    ``target_kl``, once an epoch's mean approximate KL exceeds it the remaining
    epochs are masked out (computed, not applied: shapes stay static).
    """
    num_minibatches = config.num_minibatches

    def loss_fn(
        params: tuple[Params, Params], minibatch: Batch, hp: Hyperparams
    ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        actor_params, critic_params = params
        dist = policy.dist(actor_params, minibatch.obs, hp)
        log_prob = dist.log_prob(minibatch.action)
        surrogate = clipped_surrogate_loss(
            log_prob, minibatch.old_log_prob, minibatch.advantage, hp.clip_eps
        )
        entropy = jnp.mean(dist.entropy())
        values = networks.critic.apply(critic_params, critic_part(minibatch.obs))
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

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(
        agent: AgentState, batch: Batch, key: jax.Array, hp: Hyperparams
    ) -> tuple[AgentState, UpdateInfo]:
        tx = make_optimizer(hp, config)

        def gradient_step(
            agent: AgentState, minibatch: Batch
        ) -> tuple[AgentState, tuple[jax.Array, ...]]:
            params = (agent.actor_params, agent.critic_params)
            grads, info = grad_fn(params, minibatch, hp)
            if config.optimizer == "joint":
                updates, opt_state = tx.update(grads, agent.opt_state, params)
            else:
                pairs = [
                    tx.update(g, s, p)
                    for g, s, p in zip(grads, agent.opt_state, params, strict=True)
                ]
                updates = (pairs[0][0], pairs[1][0])
                opt_state = (pairs[0][1], pairs[1][1])
            actor_params, critic_params = optax.apply_updates(params, updates)
            return AgentState(actor_params, critic_params, opt_state), info

        def epoch(
            carry: tuple[AgentState, jax.Array], epoch_key: jax.Array
        ) -> tuple[
            tuple[AgentState, jax.Array], tuple[tuple[jax.Array, ...], jax.Array]
        ]:
            agent, stopped = carry
            if num_minibatches == 1:
                # Full batch: order does not matter for a mean loss, skip the shuffle.
                new_agent, info = gradient_step(agent, batch)
            else:
                minibatches = shuffled_minibatches(epoch_key, batch, num_minibatches)
                new_agent, info = jax.lax.scan(gradient_step, agent, minibatches)
                info = jax.tree.map(jnp.mean, info)
            agent = jax.tree.map(
                lambda old, new: jnp.where(stopped, old, new), agent, new_agent
            )
            ran = jnp.logical_not(stopped)
            stopped = jnp.logical_or(stopped, info[3] > hp.target_kl)
            return (agent, stopped), (info, ran)

        (agent, _), (info, ran) = jax.lax.scan(
            epoch,
            (agent, jnp.zeros((), jnp.bool_)),
            jax.random.split(key, config.update_epochs),
        )
        weights = ran.astype(jnp.float32)
        epochs = weights.sum()
        actor_loss, critic_loss, entropy, kl = (
            jnp.sum(x * weights) / epochs for x in info
        )
        return agent, UpdateInfo(actor_loss, critic_loss, entropy, kl, epochs)

    return update
