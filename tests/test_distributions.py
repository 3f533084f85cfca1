"""The fixed-variance Gaussian policy against scipy's closed-form density."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal

from ppo_jax.distributions import fixed_variance_gaussian


def test_log_prob_matches_scipy_with_variance_half():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(7, 3)).astype(np.float32)
    actions = rng.normal(size=(7, 3)).astype(np.float32)
    dist = fixed_variance_gaussian(jnp.asarray(mean), jnp.float32(0.5))
    got = dist.log_prob(jnp.asarray(actions))
    want = [
        multivariate_normal(mean[i], 0.5 * np.eye(3)).logpdf(actions[i])
        for i in range(7)
    ]
    assert got.shape == (7,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_samples_have_variance_half():
    dist = fixed_variance_gaussian(jnp.full((20000, 1), 1.0), jnp.float32(0.5))
    samples = np.asarray(dist.sample(seed=jax.random.key(0)))
    # std of the sample variance is ~0.5*sqrt(2/n) = 0.005: 0.03 is a 6-sigma margin
    assert abs(samples.var() - 0.5) < 0.03
    assert abs(samples.mean() - 1.0) < 0.03
    assert abs(samples.std() - 0.5) > 0.1  # not standard deviation 0.5
