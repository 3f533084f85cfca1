"""The update phase: epochs of (mini)batch gradient steps in ``lax.scan``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.distributions import fixed_variance_gaussian
from ppo_jax.losses import clipped_surrogate_loss, value_loss


class Batch(NamedTuple):
    """Flat training batch, ``B = rollout_length * num_envs`` samples."""

    obs: jax.Array  # [B, obs_dim]
    action: jax.Array  # [B, action_dim]
    old_log_prob: jax.Array  # [B]
    advantage: jax.Array  # [B] normalized advantage
    target: jax.Array  # [B] value target (rewards-to-go)


@struct.dataclass
class AgentState:
    """Parameters and optimizer states of actor and critic."""

    actor_params: Any
    critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any


def make_optimizer(lr: jax.Array | float) -> optax.GradientTransformation:
    """The tutorial's optimizer: Adam (torch defaults, eps 1e-8).

    Built inside the traced function from a (possibly traced) ``lr``; the
    optimizer *state* does not depend on ``lr``, so it can be checkpointed and
    resumed under another learning rate.
    """
    return optax.adam(lr, eps=1e-8)


def init_agent(actor_params, critic_params, lr) -> AgentState:
    tx = make_optimizer(lr)
    return AgentState(
        actor_params=actor_params,
        critic_params=critic_params,
        actor_opt_state=tx.init(actor_params),
        critic_opt_state=tx.init(critic_params),
    )


def shuffled_minibatches(key: jax.Array, batch, num_minibatches: int):
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


def make_update(actor, critic, config: PPOConfig):
    """Build ``update(agent, batch, key, hparams) -> (agent, losses)``.

    Runs ``config.update_epochs`` epochs; each epoch takes ``num_minibatches``
    gradient steps over a fresh permutation of the batch (one step on the whole
    batch when ``num_minibatches == 1``, the tutorial's setting). Actor and
    critic each have their own Adam. The returned losses are the means over all
    steps, each measured before its step: ``(actor_loss, critic_loss)``.
    """
    num_minibatches = config.num_minibatches

    def loss_fn(params, minibatch: Batch, hp: Hyperparams):
        actor_params, critic_params = params
        mean = actor.apply(actor_params, minibatch.obs)
        log_prob = fixed_variance_gaussian(mean, hp.action_variance).log_prob(
            minibatch.action
        )
        actor_loss = clipped_surrogate_loss(
            log_prob, minibatch.old_log_prob, minibatch.advantage, hp.clip_eps
        )
        critic_loss = value_loss(
            critic.apply(critic_params, minibatch.obs), minibatch.target
        )
        # The two losses depend on disjoint parameters, so one gradient of their
        # sum is exactly the two separate gradients the tutorial takes.
        return actor_loss + critic_loss, (actor_loss, critic_loss)

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(agent: AgentState, batch: Batch, key: jax.Array, hp: Hyperparams):
        tx = make_optimizer(hp.lr)

        def gradient_step(agent: AgentState, minibatch: Batch):
            params = (agent.actor_params, agent.critic_params)
            (actor_grads, critic_grads), losses = grad_fn(params, minibatch, hp)
            actor_updates, actor_opt_state = tx.update(
                actor_grads, agent.actor_opt_state, agent.actor_params
            )
            critic_updates, critic_opt_state = tx.update(
                critic_grads, agent.critic_opt_state, agent.critic_params
            )
            agent = AgentState(
                actor_params=optax.apply_updates(agent.actor_params, actor_updates),
                critic_params=optax.apply_updates(agent.critic_params, critic_updates),
                actor_opt_state=actor_opt_state,
                critic_opt_state=critic_opt_state,
            )
            return agent, losses

        def epoch(agent: AgentState, epoch_key: jax.Array):
            if num_minibatches == 1:
                # Full batch: order does not matter for a mean loss, skip the shuffle.
                agent, losses = gradient_step(agent, batch)
                return agent, losses
            minibatches = shuffled_minibatches(epoch_key, batch, num_minibatches)
            agent, losses = jax.lax.scan(gradient_step, agent, minibatches)
            return agent, jax.tree.map(jnp.mean, losses)

        agent, losses = jax.lax.scan(
            epoch, agent, jax.random.split(key, config.update_epochs)
        )
        return agent, jax.tree.map(jnp.mean, losses)

    return update
