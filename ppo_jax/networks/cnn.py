"""A convolutional torso for grid and pixel observations (``--network cnn``).

``[..., H, W, C] -> conv(k x k, stride 1, same padding) -> act -> ... -> flatten
-> the MLP's hidden layers -> linear output``: one conv layer per entry of
``conv_channels``, then ``hidden_sizes`` as in :mod:`ppo_jax.networks.mlp`.
Observations are cast to float32 (MinAtar's grids are booleans). The default
(one 3x3 layer of 16 channels, then the dense layers) is the network the
MinAtar paper trained its agents with (Young & Tian 2019: 16 3x3 filters,
stride 1, then 128 units).

Actor and critic each have their own torso. Initialization follows
``ortho_init`` as the MLP does (orthogonal kernels of gain sqrt(2), else
PyTorch's ``nn.Conv2d`` default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import EnvSpec
from ppo_jax.networks import (
    ActorCritic,
    ActorOutput,
    Network,
    flax_network,
    require_array_observations,
)
from ppo_jax.networks.layers import (
    ACTIVATIONS,
    Initializer,
    dense,
    hidden_layers,
    learned_log_std,
    orthogonal,
    torch_bias_init,
    torch_kernel_init,
)


def conv_torso(
    x: jax.Array,
    channels: Sequence[int],
    kernel: int,
    activation: str,
    ortho_init: bool,
) -> jax.Array:
    """``[..., H, W, C]`` -> float32 ``[..., H * W * channels[-1]]``: conv layers
    in the calling module's scope (inside ``@compact``)."""
    x = x.astype(jnp.float32)
    act = ACTIVATIONS[activation]
    for features in channels:
        fan_in = kernel * kernel * x.shape[-1]
        kernel_init: Initializer
        bias_init: Initializer
        if ortho_init:
            kernel_init, bias_init = orthogonal(jnp.sqrt(2.0)), nn.initializers.zeros
        else:
            kernel_init, bias_init = torch_kernel_init, torch_bias_init(fan_in)
        x = act(PatchConv(features, kernel, kernel_init, bias_init)(x))
    return x.reshape(x.shape[:-3] + (-1,))


def patches(x: jax.Array, kernel: int) -> jax.Array:
    """``[..., H, W, C] -> [..., H, W, kernel * kernel * C]``: each pixel's
    ``kernel x kernel`` neighbourhood (zero-padded as "SAME"), row by row,
    channels innermost: the order of a ``[k, k, C, F]`` kernel reshaped to
    ``[k * k * C, F]``."""
    height, width = x.shape[-3], x.shape[-2]
    low = (kernel - 1) // 2
    pad = [(0, 0)] * (x.ndim - 3) + [(low, kernel - 1 - low)] * 2 + [(0, 0)]
    padded = jnp.pad(x, pad)
    shifted = [
        padded[..., dy : dy + height, dx : dx + width, :]
        for dy in range(kernel)
        for dx in range(kernel)
    ]
    return jnp.concatenate(shifted, axis=-1)


class PatchConv(nn.Module):
    """A stride-1 "SAME" convolution as one matmul of :func:`patches`.

    Same result as ``nn.Conv(features, (k, k), padding="SAME")`` with the same
    ``[k, k, C, F]`` kernel (tested), but fast on a CPU: XLA's CPU convolutions,
    their gradients above all, ran MinAtar's 10x10 grids at 1.2k training
    steps/s on the 2-core CPU, where the MLP ran 67k.
    """

    features: int
    kernel: int
    kernel_init: Initializer
    bias_init: Initializer

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, c = self.kernel, x.shape[-1]
        weights = self.param("kernel", self.kernel_init, (k, k, c, self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        return patches(x, k) @ weights.reshape(k * k * c, self.features) + bias


class CNNActor(nn.Module):
    """Policy network: ``[..., H, W, C] -> ActorOutput``."""

    channels: Sequence[int]
    kernel: int
    hidden_sizes: Sequence[int]
    action_dim: int
    activation: str = "relu"
    ortho_init: bool = False
    learned_std: bool = False

    @nn.compact
    def __call__(
        self, obs: jax.Array, init_log_std: float | jax.Array = 0.0
    ) -> ActorOutput:
        x = conv_torso(
            obs, self.channels, self.kernel, self.activation, self.ortho_init
        )
        x = hidden_layers(x, self.hidden_sizes, self.activation, self.ortho_init)
        out = dense(self.action_dim, x, self.ortho_init, 0.01)
        return ActorOutput(
            out, learned_log_std(self, self.learned_std, self.action_dim, init_log_std)
        )


class CNNCritic(nn.Module):
    """State-value network: ``[..., H, W, C] -> [...]``."""

    channels: Sequence[int]
    kernel: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    ortho_init: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = conv_torso(
            obs, self.channels, self.kernel, self.activation, self.ortho_init
        )
        x = hidden_layers(x, self.hidden_sizes, self.activation, self.ortho_init)
        return dense(1, x, self.ortho_init, 1.0)[..., 0]


def check_grid(spec: EnvSpec, config: PPOConfig) -> None:
    """Refuse observations that are not ``[H, W, C]`` grids (one sentence)."""
    require_array_observations(spec, config)
    for part in (spec, spec.for_critic()):
        if len(part.obs_shape) != 3:
            raise ConfigError(
                "network",
                config.network,
                f"mlp or gru for observations of shape {part.obs_shape}: the "
                "convolutional torso reads [height, width, channels] grids",
            )


def make_cnn_networks(spec: EnvSpec, config: PPOConfig) -> ActorCritic:
    """The network factory of ``--network cnn`` (``conv_channels``,
    ``conv_kernel``, then ``hidden_sizes``, ``activation``, ``ortho_init``)."""
    check_grid(spec, config)
    conv = (tuple(config.conv_channels), config.conv_kernel)
    hidden = tuple(config.hidden_sizes)
    actor = CNNActor(
        *conv,
        hidden,
        spec.action_dim,
        config.activation,
        config.ortho_init,
        learned_std=config.policy_std == "learned",
    )
    critic = CNNCritic(*conv, hidden, config.activation, config.ortho_init)
    dummy = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    critic_shape = spec.for_critic().obs_shape
    return ActorCritic(
        actor=Network(
            init=lambda key, hp: actor.init(key, dummy, hp.init_log_std),
            apply=lambda params, obs: cast(ActorOutput, actor.apply(params, obs)),
        ),
        critic=flax_network(critic, spec.for_critic()),
        critic_width=max(
            critic_shape[0] * critic_shape[1] * max(config.conv_channels),
            *hidden,
        ),
    )
