"""The MLP actor and critic (``--network mlp``), as in the tutorial.

``flatten -> Linear(in, h1) -> act -> ... -> Linear(h_k, out)``, no output
activation: observations of any shape are flattened (and cast to float32) as
the first step. The actor outputs the mean action ``[..., action_dim]`` (or the
logits of a discrete policy), plus a learned state-independent log-std when
``policy_std="learned"``; the critic one value per observation ``[...]``.

Initialization (:mod:`ppo_jax.networks.layers`): by default as PyTorch's
``nn.Linear``; with ``ortho_init`` orthogonal, gain sqrt(2) for hidden layers,
0.01 for the actor's output, 1 for the critic's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.envs.contract import EnvSpec
from ppo_jax.networks import (
    ActorCritic,
    ActorOutput,
    Network,
    flax_network,
    require_array_observations,
)
from ppo_jax.networks.layers import dense, flatten, hidden_layers, learned_log_std


def mlp(
    x: jax.Array,
    hidden_sizes: Sequence[int],
    out_size: int,
    activation: str,
    ortho_init: bool,
    out_gain: float,
) -> jax.Array:
    """Dense layers created in the calling module's scope (inside ``@compact``)."""
    x = hidden_layers(x, hidden_sizes, activation, ortho_init)
    return dense(out_size, x, ortho_init, out_gain)


class MLP(nn.Module):
    """Fully connected network: hidden layers with an activation, linear output."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"
    ortho_init: bool = False
    out_gain: float = 1.0  # orthogonal gain of the output layer

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return mlp(
            x,
            self.hidden_sizes,
            self.out_size,
            self.activation,
            self.ortho_init,
            self.out_gain,
        )


class Actor(nn.Module):
    """Policy network: ``[..., *obs_shape] -> ActorOutput``."""

    hidden_sizes: Sequence[int]
    action_dim: int
    obs_ndim: int = 1
    activation: str = "relu"
    ortho_init: bool = False
    learned_std: bool = False

    @nn.compact
    def __call__(
        self, obs: jax.Array, init_log_std: float | jax.Array = 0.0
    ) -> ActorOutput:
        # Layers directly in this scope (Dense_0, ...), the critic's inside an
        # MLP submodule: parameter paths seed the init, and these are the paths
        # the tutorial preset's recorded results were produced with.
        out = mlp(
            flatten(obs, self.obs_ndim),
            self.hidden_sizes,
            self.action_dim,
            self.activation,
            self.ortho_init,
            0.01,
        )
        log_std = learned_log_std(self, self.learned_std, self.action_dim, init_log_std)
        return ActorOutput(out, log_std)


class Critic(nn.Module):
    """State-value network: ``[..., *obs_shape] -> [...]``."""

    hidden_sizes: Sequence[int]
    obs_ndim: int = 1
    activation: str = "relu"
    ortho_init: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        mlp = MLP(self.hidden_sizes, 1, self.activation, self.ortho_init, 1.0)
        return mlp(flatten(obs, self.obs_ndim))[..., 0]


def make_mlp_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network mlp`` (``hidden_sizes``,
    ``activation``, ``ortho_init``; a learned log-std with ``policy_std``
    "learned", starting at ``hparams.init_log_std``)."""
    require_array_observations(spec, config)
    hidden, ndim = tuple(config.hidden_sizes), len(spec.obs_shape)
    actor = Actor(
        hidden,
        spec.action_dim,
        ndim,
        config.activation,
        config.ortho_init,
        learned_std=config.policy_std == "learned",
    )
    critic_spec = spec.for_critic()
    critic = Critic(
        hidden, len(critic_spec.obs_shape), config.activation, config.ortho_init
    )
    dummy = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    return ActorCritic(
        actor=Network(
            init=lambda key, hp: actor.init(key, dummy, hp.init_log_std),
            apply=lambda params, obs: cast(ActorOutput, actor.apply(params, obs)),
        ),
        critic=flax_network(critic, critic_spec),
        critic_width=max(hidden),
    )
