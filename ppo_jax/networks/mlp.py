"""The MLP actor and critic (``--network mlp``), as in the tutorial.

``flatten -> Linear(in, h1) -> act -> ... -> Linear(h_k, out)``, no output
activation: observations of any shape are flattened (and cast to float32) as
the first step. The actor outputs the mean action ``[..., action_dim]`` (or the
logits of a discrete policy), plus a learned state-independent log-std when
``policy_std="learned"``; the critic one value per observation ``[...]``.

Initialization: by default as PyTorch's ``nn.Linear`` (uniform in
+-1/sqrt(fan_in)), so the tutorial preset starts from the same distribution of
networks as the tutorial. With ``ortho_init``: orthogonal weights (gain sqrt(2)
for hidden layers, 0.01 for the actor's output, 1 for the critic's), zero
biases. Its QR decomposition runs under ``sequential_vmap``: vmapping training
over seeds loops over the QRs instead of batching them, which avoids the
batched-QR deadlock seen on CPU with jax 0.10.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.config import PPOConfig
from ppo_jax.envs.contract import EnvSpec
from ppo_jax.networks import ActorCritic, ActorOutput, Network, flax_network

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


# The kernel gradient of a dense layer is ``x^T @ dy``, a sum over the batch.
# XLA's CPU backend hands that dot (batch axis contracted on both sides) to
# Eigen, which took 17-21 us for a 64x64x64 one in the matched configuration's
# gradient step (profile), against ~8 us for the forward 64x64x64 dot that
# goes to YNNPACK. Transposing ``x`` for real first (the optimization barrier
# keeps XLA from folding the transpose back into the dot) gives YNNPACK a
# plain row-major product: the matched 64-wide configuration trained 1.07x
# faster (benchmarks/versus.py, 5 alternating rounds of fresh processes,
# range 1.01-1.15; 2-core CPU). Larger products are left to XLA's own
# gradient: the copy made the 256-wide matched step ~20% slower, and the
# tutorial's (2200 samples) whole run 10% slower even when only its 64 -> 1
# output layers took it (fresh processes, 4 alternating runs: 146k vs 167k
# steps/s). Measured on CPUs only, so other backends keep XLA's gradient.
SMALL_KERNEL_GRADIENT_MACS = 64 * 64 * 64
SMALL_KERNEL_GRADIENT_ROWS = 256


@jax.custom_vjp
def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x [..., in] @ kernel [in, out] -> [..., out]``, whose kernel gradient
    is the row-major product ``(x^T copied) @ dy`` (see above)."""
    return x @ kernel


def _matmul_forward(
    x: jax.Array, kernel: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x @ kernel, (x, kernel)


def _matmul_backward(
    residuals: tuple[jax.Array, jax.Array], dy: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    rows = x.reshape(-1, x.shape[-1])  # [B, in]
    dy_rows = dy.reshape(-1, dy.shape[-1])  # [B, out]
    x_t = jax.lax.optimization_barrier(rows.T)  # [in, B], a real transpose
    return dy @ kernel.T, x_t @ dy_rows


matmul.defvjp(_matmul_forward, _matmul_backward)


def dense_dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: jax.lax.DotDimensionNumbers,
    precision: jax.lax.PrecisionLike = None,
    preferred_element_type: jax.typing.DTypeLike | None = None,
) -> jax.Array:
    """flax ``Dense``'s dot: :func:`matmul` for its usual ``[..., in] @ [in,
    out]`` when small (at most ``SMALL_KERNEL_GRADIENT_ROWS`` rows ``B`` and
    ``SMALL_KERNEL_GRADIENT_MACS`` products ``B * in * out``, shapes as
    traced: per run under vmap) on a CPU, ``lax.dot_general`` for anything
    else."""
    usual = (((lhs.ndim - 1,), (0,)), ((), ()))
    if (
        dimension_numbers == usual
        and precision is None
        and preferred_element_type is None
        and rhs.ndim == 2
        and math.prod(lhs.shape[:-1]) <= SMALL_KERNEL_GRADIENT_ROWS
        and lhs.size * rhs.shape[1] <= SMALL_KERNEL_GRADIENT_MACS
        and jax.default_backend() == "cpu"
    ):
        return matmul(lhs, rhs)
    return jax.lax.dot_general(
        lhs, rhs, dimension_numbers, precision, preferred_element_type
    )


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
