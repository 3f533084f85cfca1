"""Building blocks of the networks: initializers, dense layers, flattening.

Initialization: by default as PyTorch's ``nn.Linear`` (uniform in
+-1/sqrt(fan_in)), so the tutorial preset starts from the same distribution of
networks as the tutorial. With ``ortho_init``: orthogonal weights (the gain
given by the caller), zero biases. Its QR decomposition runs under
``sequential_vmap``: vmapping training over seeds loops over the QRs instead
of batching them, which avoids the batched-QR deadlock seen on CPU with jax
0.10.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.networks.cpu_kernels import dense_dot_general

Initializer = Callable[..., jax.Array]  # (key, shape, dtype) -> array
ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}

# PyTorch's default nn.Linear weight init is kaiming_uniform(a=sqrt(5)), which is
# uniform in +-sqrt(1/fan_in): variance_scaling with scale 1/3 gives that bound.
torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Initializer:
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


@jax.custom_batching.sequential_vmap
def _sequential_qr(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.linalg.qr(a)


def orthogonal(gain: float | jax.Array) -> Initializer:
    """Orthogonal initializer for ``[fan_in, fan_out]`` kernels (conv kernels
    ``[..., in, out]`` as the ``[prod(...) * in, out]`` matrix).

    Same distribution as ``nn.initializers.orthogonal`` (QR of a Gaussian
    matrix, signs fixed by R's diagonal), but never a batched QR under vmap.
    """

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        cols = shape[-1]
        rows = math.prod(shape) // cols
        a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
        q, r = _sequential_qr(a)
        q = q * jnp.sign(jnp.diag(r))
        q = q if rows >= cols else q.T
        return (gain * q).reshape(shape).astype(dtype)

    return init


def flatten(obs: jax.Array, obs_ndim: int) -> jax.Array:
    """``[..., *obs_shape]`` (``obs_ndim`` trailing axes) -> float32 ``[..., D]``."""
    batch_shape = obs.shape[: obs.ndim - obs_ndim]
    return obs.reshape(batch_shape + (-1,)).astype(jnp.float32)


def hidden_layers(
    x: jax.Array, hidden_sizes: Sequence[int], activation: str, ortho_init: bool
) -> jax.Array:
    """``[..., D] -> [..., hidden_sizes[-1]]``: Dense layers with the activation
    (gain sqrt(2) when orthogonal), in the calling module's scope."""
    act = ACTIVATIONS[activation]
    for width in hidden_sizes:
        x = act(dense(width, x, ortho_init, jnp.sqrt(2.0)))
    return x


def dense(
    features: int, x: jax.Array, ortho_init: bool, gain: float | jax.Array
) -> jax.Array:
    if ortho_init:
        kernel_init, bias_init = orthogonal(gain), nn.initializers.zeros
    else:
        kernel_init, bias_init = torch_kernel_init, torch_bias_init(x.shape[-1])
    return nn.Dense(
        features,
        kernel_init=kernel_init,
        bias_init=bias_init,
        dot_general=dense_dot_general,
    )(x)


def learned_log_std(
    module: nn.Module, learned: bool, action_dim: int, init_log_std: float | jax.Array
) -> jax.Array | None:
    """The actor's state-independent log-std ``[action_dim]``, a parameter of
    ``module``, when ``learned`` (else None); ``init_log_std`` at init."""
    if not learned:
        return None
    return module.param(
        "log_std",
        lambda _, shape: jnp.full(shape, init_log_std, jnp.float32),
        (action_dim,),
    )
