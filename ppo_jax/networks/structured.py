"""Networks for structured observations (``--network structured``): a dict of
arrays (Jumanji's grids and vectors, XLand-MiniGrid's id grids with the
agent's direction, ...), each entry encoded by its kind, then concatenated.

Per entry of one observation (its shape without batch axes):

- integer grid (an integer dtype, rank 2 or 3: ``[H, W]`` or ``[H, W, C]`` of
  ids such as tile and colour numbers): each id through a learned embedding
  of :data:`EMBED_SIZE` floats (one table per entry, :data:`VOCABULARY` rows;
  ids are clipped to them: larger ids share the last row, negative ones the
  first), the ``C`` embeddings of
  a cell concatenated, then the convolutional torso of ``--network cnn``
  (``conv_channels``, ``conv_kernel``), flattened;
- float or boolean grid of rank 3 (``[H, W, C]``: an image, MinAtar-style
  channels): the convolutional torso, flattened;
- integer counts (an integer dtype of any other rank: a step counter, an
  agent's direction, a vector of counts): ``sign(x) * log(1 + |x|)``,
  flattened, so that a counter that reaches thousands (Jumanji Snake's
  ``step_count``: up to 4000) enters the dense layers at the scale of the
  others (8.3 for 4000; 0 to 1.4 for a direction of 0 to 3);
- anything else (float vectors, scalars and matrices such as a set of items'
  features, boolean flags): cast to float32 and flattened.

The encodings, concatenated in the dict's (sorted) key order, go through
``hidden_sizes`` dense layers and the output layer, as in the MLP. Actor and
critic have their own encoders. Observation normalization (``normalize_obs``)
reaches the float entries only; ids and flags are read as they come.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import EnvSpec
from ppo_jax.networks import ActorCritic, ActorOutput, Network
from ppo_jax.networks.cnn import conv_torso
from ppo_jax.networks.layers import dense, hidden_layers, learned_log_std

# Floats per id of an integer grid, and the rows of each embedding table.
EMBED_SIZE = 8
VOCABULARY = 256


def entry_kind(shape: tuple[int, ...], dtype: Any) -> str:
    """How an entry of one observation is encoded: ``"ids"`` (embedding, then
    convolutions), ``"grid"`` (convolutions), ``"counts"`` (signed log,
    flattened) or ``"flat"``."""
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    if integer and len(shape) in (2, 3):
        return "ids"
    if integer:
        return "counts"
    if len(shape) == 3:
        return "grid"
    return "flat"


class StructuredEncoder(nn.Module):
    """``{key: [..., *shape_key]}`` -> float32 ``[..., D]``: each entry by its
    kind (module docstring), concatenated in key order."""

    # key -> rank of that entry in one observation (its trailing axes)
    ranks: Mapping[str, int]
    kinds: Mapping[str, str]
    channels: Sequence[int]
    kernel: int
    activation: str
    ortho_init: bool

    @nn.compact
    def __call__(self, obs: Mapping[str, jax.Array]) -> jax.Array:
        parts = []
        for key in sorted(self.kinds):
            x, rank, kind = obs[key], self.ranks[key], self.kinds[key]
            batch = x.shape[: x.ndim - rank]
            if kind == "ids":
                # Clipped rather than wrapped: jnp.mod does not export to
                # ONNX with a dynamic batch axis, nor a bitwise and to opset 17.
                ids = jnp.clip(x.astype(jnp.int32), 0, VOCABULARY - 1)
                x = nn.Embed(VOCABULARY, EMBED_SIZE, name=f"embed_{key}")(ids)
                x = x.reshape(x.shape[: x.ndim - (rank + 1) + 2] + (-1,))
            if kind in ("ids", "grid"):
                x = conv_torso(
                    x, self.channels, self.kernel, self.activation, self.ortho_init
                )
            if kind == "counts":
                # log(1 + |x|) rather than log1p: exported to ONNX as is.
                x = x.astype(jnp.float32)
                x = jnp.sign(x) * jnp.log(1.0 + jnp.abs(x))
            parts.append(x.reshape(batch + (-1,)).astype(jnp.float32))
        return jnp.concatenate(parts, axis=-1)


class StructuredActor(nn.Module):
    encoder: StructuredEncoder
    hidden_sizes: Sequence[int]
    action_dim: int
    learned_std: bool

    @nn.compact
    def __call__(
        self, obs: Mapping[str, jax.Array], init_log_std: float | jax.Array = 0.0
    ) -> ActorOutput:
        e = self.encoder
        x = hidden_layers(e(obs), self.hidden_sizes, e.activation, e.ortho_init)
        out = dense(self.action_dim, x, e.ortho_init, 0.01)
        log_std = learned_log_std(self, self.learned_std, self.action_dim, init_log_std)
        return ActorOutput(out=out, log_std=log_std)


class StructuredCritic(nn.Module):
    encoder: StructuredEncoder
    hidden_sizes: Sequence[int]

    @nn.compact
    def __call__(self, obs: Mapping[str, jax.Array]) -> jax.Array:
        e = self.encoder
        x = hidden_layers(e(obs), self.hidden_sizes, e.activation, e.ortho_init)
        return dense(1, x, e.ortho_init, 1.0)[..., 0]


def structured_entries(spec: EnvSpec, config: PPOConfig) -> dict[str, Any]:
    """One observation's entries ``{key: ShapeDtypeStruct}``; refuses array
    observations and grids the convolutions cannot read (one sentence)."""
    if spec.obs_structure is None:
        raise ConfigError(
            "network",
            config.network,
            f"mlp, cnn or gru for array observations of shape {spec.obs_shape}: "
            "structured reads dict observations",
        )
    return dict(spec.obs_structure)


def structured_encoder(
    entries: Mapping[str, Any], config: PPOConfig
) -> StructuredEncoder:
    """The encoder of observations with these entries (``config``'s conv
    layers and activation)."""
    return StructuredEncoder(
        ranks={k: len(v.shape) for k, v in entries.items()},
        kinds={k: entry_kind(tuple(v.shape), v.dtype) for k, v in entries.items()},
        channels=tuple(config.conv_channels),
        kernel=config.conv_kernel,
        activation=config.activation,
        ortho_init=config.ortho_init,
    )


def encoded_width(entries: Mapping[str, Any], config: PPOConfig) -> int:
    """Floats per observation after the encoder (before the dense layers)."""
    width = 0
    for value in entries.values():
        shape = tuple(value.shape)
        kind = entry_kind(shape, value.dtype)
        conv = kind in ("ids", "grid")
        cells = shape[0] * shape[1] if conv else int(np.prod(shape))
        width += cells * (config.conv_channels[-1] if conv else 1)
    return width


def make_structured_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network structured`` (``conv_channels``,
    ``conv_kernel`` for grids, then ``hidden_sizes``, ``activation``,
    ``ortho_init``)."""
    entries = structured_entries(spec, config)
    critic_entries = structured_entries(spec.for_critic(), config)
    hidden = tuple(config.hidden_sizes)
    actor = StructuredActor(
        structured_encoder(entries, config),
        hidden,
        spec.action_dim,
        learned_std=config.policy_std == "learned",
    )
    critic = StructuredCritic(structured_encoder(critic_entries, config), hidden)

    def zeros(structure: Mapping[str, Any]) -> dict[str, jax.Array]:
        return {k: jnp.zeros(v.shape, v.dtype) for k, v in structure.items()}

    dummy, critic_dummy = zeros(entries), zeros(critic_entries)
    return ActorCritic(
        actor=Network(
            init=lambda key, hp: actor.init(key, dummy, hp.init_log_std),
            apply=lambda params, obs: cast(ActorOutput, actor.apply(params, obs)),
        ),
        critic=Network(
            init=lambda key, hp: critic.init(key, critic_dummy),
            apply=lambda params, obs: cast(jax.Array, critic.apply(params, obs)),
        ),
        critic_width=max(encoded_width(critic_entries, config), *hidden),
    )
