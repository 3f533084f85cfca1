"""Actor and critic: two separate MLPs, as in the tutorial.

``Linear(in, h1) -> act -> ... -> Linear(h_k, out)``, no output activation. The
actor outputs the mean action ``[..., action_dim]``, the critic one value per
observation ``[...]``. Weights and biases are initialised as PyTorch's
``nn.Linear`` does (uniform in +-1/sqrt(fan_in)), so the tutorial preset starts
from the same distribution of networks as the tutorial. This init uses no QR
decomposition, so vmapping it over seeds cannot hit the batched-QR deadlock seen
with orthogonal init on CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}

# PyTorch's default nn.Linear weight init is kaiming_uniform(a=sqrt(5)), which is
# uniform in +-sqrt(1/fan_in): variance_scaling with scale 1/3 gives that bound.
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class MLP(nn.Module):
    """Fully connected network: hidden layers with an activation, linear output."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(self._dense(width, x))
        return self._dense(self.out_size, x)

    def _dense(self, features: int, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        return nn.Dense(
            features,
            kernel_init=_torch_kernel_init,
            bias_init=_torch_bias_init(fan_in),
        )(x)


class Critic(nn.Module):
    """State-value network: ``[..., obs_dim] -> [...]``."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, 1, self.activation)(obs)[..., 0]


def make_networks(hidden_sizes: Sequence[int], activation: str, action_dim: int):
    """Return ``(actor, critic)`` flax modules.

    actor: ``[..., obs_dim] -> [..., action_dim]`` mean action.
    critic: ``[..., obs_dim] -> [...]`` value.
    """
    hidden = tuple(hidden_sizes)
    return MLP(hidden, action_dim, activation), Critic(hidden, activation)
