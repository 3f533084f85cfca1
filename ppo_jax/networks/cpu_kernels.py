"""A dense layer's matrix product with a kernel gradient tuned for XLA's CPU.

flax's ``Dense`` takes :func:`dense_dot_general` as its dot (see
:func:`ppo_jax.networks.layers.dense`): small products on a CPU go through
:func:`matmul`, whose custom gradient is the same arithmetic laid out as a
row-major product; everything else is ``lax.dot_general`` as usual.
"""

from __future__ import annotations

import math

import jax

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
