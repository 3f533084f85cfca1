"""Loss functions against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.algo.losses import (
    approx_kl,
    clipped_surrogate_loss,
    clipped_value_loss,
    value_loss,
)


def test_clipped_surrogate_hand_values():
    # ratios 1.5, 1.5, 0.5, 0.5 with advantages 2, -1, 1, -2 and eps 0.2:
    # min(3.0, 2.4)=2.4, min(-1.5, -1.2)=-1.5, min(0.5, 0.8)=0.5,
    # min(-1.0, -1.6)=-1.6  ->  loss = -mean = -(-0.2)/4 = 0.05
    ratio = np.array([1.5, 1.5, 0.5, 0.5])
    old = np.array([-1.0, 0.3, -2.0, 0.7], np.float32)
    new = (old + np.log(ratio)).astype(np.float32)
    adv = jnp.array([2.0, -1.0, 1.0, -2.0])
    loss = clipped_surrogate_loss(jnp.asarray(new), jnp.asarray(old), adv, 0.2)
    assert float(loss) == pytest.approx(0.05, abs=1e-6)


def test_clipped_surrogate_unclipped_inside_range():
    old = jnp.zeros(3)
    new = jnp.log(jnp.array([0.9, 1.0, 1.1]))
    adv = jnp.array([1.0, -3.0, 2.0])
    expected = -(0.9 * 1.0 + 1.0 * -3.0 + 1.1 * 2.0) / 3
    assert float(clipped_surrogate_loss(new, old, adv, 0.2)) == pytest.approx(
        expected, rel=1e-5
    )


def test_value_loss_is_mse():
    v = jnp.array([1.0, 2.0, 3.0])
    g = jnp.array([0.0, 2.0, 5.0])
    assert float(value_loss(v, g)) == pytest.approx((1 + 0 + 4) / 3)


def test_clipped_value_loss_hand_values():
    # old 1.0, eps 0.2. v=2, G=3: unclipped 1, clipped (1.2-3)^2 = 3.24 -> 3.24
    # v=0.9, G=0: unclipped 0.81, clipped 0.9 (inside range) 0.81 -> 0.81
    # v=-1, G=-1: unclipped 0, clipped (0.8+1)^2 = 3.24 -> 3.24
    values = jnp.array([2.0, 0.9, -1.0])
    old = jnp.array([1.0, 1.0, 1.0])
    targets = jnp.array([3.0, 0.0, -1.0])
    loss = clipped_value_loss(values, old, targets, 0.2)
    assert float(loss) == pytest.approx((3.24 + 0.81 + 3.24) / 3, rel=1e-5)


def test_approx_kl_hand_values():
    log_ratio = np.log(np.array([2.0, 0.5, 1.0]))
    want = np.mean([(2 - 1) - np.log(2), (0.5 - 1) - np.log(0.5), 0.0])
    got = approx_kl(jnp.asarray(log_ratio, jnp.float32), jnp.zeros(3))
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(approx_kl(jnp.zeros(3), jnp.zeros(3))) == 0.0
