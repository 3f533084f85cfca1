"""Running statistics against numpy over all the data seen so far."""

import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.algo.normalization import (
    init_running_stats,
    normalize,
    update_running_stats,
)


def test_running_mean_var_match_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    stats = init_running_stats((3,))
    seen = []
    for _ in range(20):
        batch = rng.normal(loc=[1.0, -5.0, 100.0], scale=[0.1, 2.0, 30.0], size=(8, 3))
        batch = batch.astype(np.float32)
        seen.append(batch)
        stats = update_running_stats(stats, jnp.asarray(batch))
        data = np.concatenate(seen).astype(np.float64)
        # Closed form: the data plus gym's prior, a pseudo-sample of weight 1e-4
        # with mean 0 and variance 1.
        w = 1e-4
        total = len(data) + w
        mean = data.sum(0) / total
        var = (w * (1.0 + mean**2) + ((data - mean) ** 2).sum(0)) / total
        np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.var, var, rtol=1e-4)
        assert float(stats.count) == pytest.approx(total, rel=1e-6)


def test_normalize_centres_scales_and_clips():
    stats = init_running_stats((2,))
    stats = update_running_stats(stats, jnp.array([[0.0, 10.0], [2.0, 30.0]]))
    out = normalize(jnp.array([[1.0, 20.0], [1e6, -1e6]]), stats)
    np.testing.assert_allclose(out[0], [0.0, 0.0], atol=1e-3)
    np.testing.assert_array_equal(out[1], [10.0, -10.0])
