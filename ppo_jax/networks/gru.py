"""Recurrent actor and critic (``--network gru``, ``cnn-gru``, ``structured-gru``).

Each of actor and critic is ``encoder -> GRU cell -> head``:

- encoder: the MLP's hidden layers (``hidden_sizes``, ``activation``) on the
  flattened observation, or with ``cnn-gru`` the convolutional torso of
  :mod:`ppo_jax.networks.cnn` (``conv_channels``, ``conv_kernel``) first, or
  with ``structured-gru`` the structured encoder of dict observations
  (:mod:`ppo_jax.networks.structured`) first;
- a GRU cell of ``recurrent_size`` units, whose hidden state ``[...,
  recurrent_size]`` is the carry: zeros at every episode start;
- head: one hidden layer of ``hidden_sizes[-1]`` units, then the linear output
  (the actor's mean or logits, the critic's value).

The same layout as PureJaxRL's recurrent PPO (embedding, GRU, dense head), with
separate actor and critic networks as everywhere in ppo_jax, so each may have
its own optimizer. The GRU's recurrent kernel is orthogonal (flax's default
distribution, drawn with :func:`ppo_jax.networks.layers.orthogonal`, which is safe
under ``vmap``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import EnvSpec
from ppo_jax.networks import (
    ActorCritic,
    ActorOutput,
    Params,
    RecurrentNetwork,
    require_array_observations,
)
from ppo_jax.networks.cnn import check_grid, conv_torso
from ppo_jax.networks.layers import (
    Initializer,
    dense,
    flatten,
    hidden_layers,
    learned_log_std,
    orthogonal,
)
from ppo_jax.networks.structured import (
    StructuredEncoder,
    structured_encoder,
    structured_entries,
)

Conv = tuple[tuple[int, ...], int] | None  # (channels, kernel) of a cnn encoder


def gru_recurrent_init(size: int) -> Initializer:
    """The ``[size, 3 * size]`` recurrent kernel of the reset, update and
    candidate gates: an orthogonal ``[size, size]`` block each (as flax's
    ``GRUCell`` draws them, one per gate)."""
    block = orthogonal(1.0)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        keys = jax.random.split(key, 3)
        return jnp.concatenate([block(k, (size, size), dtype) for k in keys], -1)

    return init


def gru_scan(
    carry: jax.Array,
    gates_in: jax.Array,
    first: jax.Array,
    recurrent_kernel: jax.Array,
    candidate_bias: jax.Array,
) -> jax.Array:
    """The GRU over time: ``carry`` ``[n, H]``, ``gates_in`` ``[T, n, 3H]`` (the
    input's projections with their biases, computed for all steps at once),
    ``first`` ``[T, n]`` (restart at zeros before the step). Returns the
    hidden states after each step, ``[T, n, H]``.

    flax's ``GRUCell`` formula: ``r = s(x_r + h W_r)``, ``z = s(x_z + h W_z)``,
    ``c = tanh(x_c + r * (h W_c + b_c))``, ``h' = (1 - z) * c + z * h``. Only
    ``h W`` is inside the loop, as one matmul for the three gates: a step of
    the loop is a few operations, whose overhead dominates on a CPU.
    """
    size = carry.shape[-1]

    def step(h: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> Any:
        x, restart = inputs
        h = jnp.where(restart[..., None], 0.0, h)
        hidden = h @ recurrent_kernel
        r = nn.sigmoid(x[..., :size] + hidden[..., :size])
        z = nn.sigmoid(x[..., size : 2 * size] + hidden[..., size : 2 * size])
        c = jnp.tanh(
            x[..., 2 * size :] + r * (hidden[..., 2 * size :] + candidate_bias)
        )
        h = (1.0 - z) * c + z * h
        return h, h

    _, hidden_states = jax.lax.scan(step, carry, (gates_in, first))
    return hidden_states


class RecurrentTorso(nn.Module):
    """``(carry [n, R], obs [T, n, *obs_shape], first [T, n]) -> (carries [T,
    n, R], features [T, n, H])``: encoder and head on all steps at once, the
    GRU's recurrence in a scan over time."""

    hidden_sizes: Sequence[int]
    recurrent_size: int
    obs_ndim: int
    conv: Conv = None
    activation: str = "relu"
    ortho_init: bool = False
    # Dict observations: the structured encoder of each entry (then no conv).
    encoder: StructuredEncoder | None = None

    @nn.compact
    def __call__(
        self, carry: jax.Array, obs: Any, first: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        if self.encoder is not None:
            x = self.encoder(obs)
        elif self.conv is None:
            x = flatten(obs, self.obs_ndim)
        else:
            channels, kernel = self.conv
            x = conv_torso(obs, channels, kernel, self.activation, self.ortho_init)
        x = hidden_layers(x, self.hidden_sizes, self.activation, self.ortho_init)
        size = self.recurrent_size
        gates_in = nn.Dense(3 * size, name="gru_input")(x)
        recurrent_kernel = self.param(
            "gru_recurrent_kernel", gru_recurrent_init(size), (size, 3 * size)
        )
        candidate_bias = self.param(
            "gru_candidate_bias", nn.initializers.zeros, (size,)
        )
        carries = gru_scan(carry, gates_in, first, recurrent_kernel, candidate_bias)
        head = hidden_layers(
            carries, self.hidden_sizes[-1:], self.activation, self.ortho_init
        )
        return carries, head


class RecurrentActor(nn.Module):
    """``(carry, obs [T, n, ...], first) -> (carries, ActorOutput [T, n, ...])``."""

    torso: RecurrentTorso
    action_dim: int
    learned_std: bool = False

    @nn.compact
    def __call__(
        self,
        carry: jax.Array,
        obs: jax.Array,
        first: jax.Array,
        init_log_std: float | jax.Array = 0.0,
    ) -> tuple[jax.Array, ActorOutput]:
        carries, x = self.torso(carry, obs, first)
        out = dense(self.action_dim, x, self.torso.ortho_init, 0.01)
        log_std = learned_log_std(self, self.learned_std, self.action_dim, init_log_std)
        return carries, ActorOutput(out, log_std)


class RecurrentCritic(nn.Module):
    """``(carry, obs [T, n, ...], first) -> (carries, values [T, n])``."""

    torso: RecurrentTorso

    @nn.compact
    def __call__(
        self, carry: jax.Array, obs: jax.Array, first: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        carries, x = self.torso(carry, obs, first)
        return carries, dense(1, x, self.torso.ortho_init, 1.0)[..., 0]


def make_gru_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network gru``: an MLP encoder, a GRU cell
    of ``recurrent_size`` units and a dense head, for actor and critic."""
    return _make(spec, config, conv=None)


def make_cnn_gru_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network cnn-gru``: the convolutional torso
    (``conv_channels``, ``conv_kernel``) before the MLP encoder."""
    check_grid(spec, config)
    return _make(spec, config, conv=(tuple(config.conv_channels), config.conv_kernel))


def make_structured_gru_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network structured-gru``: the structured
    encoder of dict observations (:mod:`ppo_jax.networks.structured`) before
    the MLP encoder, the GRU cell and the head."""
    structured_entries(spec, config)
    return _make(spec, config, conv=None, structured=True)


def _make(
    spec: EnvSpec, config: PPOConfig, conv: Conv, structured: bool = False
) -> ActorCritic:
    if not structured:
        require_array_observations(spec, config)
    size = config.recurrent_size
    critic_spec = spec.for_critic()

    def torso(part: EnvSpec) -> RecurrentTorso:
        return RecurrentTorso(
            tuple(config.hidden_sizes),
            size,
            len(part.obs_shape),
            conv,
            config.activation,
            config.ortho_init,
            structured_encoder(structured_entries(part, config), config)
            if structured
            else None,
        )

    actor = RecurrentActor(
        torso(spec),
        spec.action_dim,
        learned_std=config.policy_std == "learned",
    )
    critic = RecurrentCritic(torso(critic_spec))

    def initial_carry(batch_shape: tuple[int, ...]) -> jax.Array:
        return jnp.zeros(batch_shape + (size,), jnp.float32)

    def network(
        module: RecurrentActor | RecurrentCritic,
        spec: EnvSpec,
        init_args: Callable[[Hyperparams], tuple[Any, ...]],
    ) -> RecurrentNetwork[Any]:
        """Sequences are the module's own call; a step is a sequence of one."""

        def sequence(params: Params, carry: Any, obs: Any, first: Any) -> Any:
            return module.apply(params, carry, obs, first)

        def step(params: Params, carry: Any, obs: Any) -> Any:
            first = jnp.zeros((1,) + carry.shape[:-1], jnp.bool_)
            steps = jax.tree.map(lambda x: x[None], obs)  # a sequence of one
            carries, out = sequence(params, carry, steps, first)
            if isinstance(out, ActorOutput):  # log_std: one for every step
                return carries[0], out._replace(out=out.out[0])
            return carries[0], out[0]

        obs = jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype), spec.observation_struct((1,))
        )
        first = jnp.zeros((1,), jnp.bool_)
        return RecurrentNetwork(
            init=lambda key, hp: module.init(
                key, initial_carry(()), obs, first, *init_args(hp)
            ),
            initial_carry=initial_carry,
            step=step,
            sequence=sequence,
        )

    return ActorCritic(
        actor=network(actor, spec, lambda hp: (hp.init_log_std,)),
        critic=network(critic, critic_spec, lambda hp: ()),
        critic_width=max(*config.hidden_sizes, 3 * size),
    )
