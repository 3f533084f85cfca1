"""The fixed-variance Gaussian policy against scipy's closed-form density."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal

from ppo_jax import PPOConfig
from ppo_jax.algo.distributions import fixed_variance_gaussian, make_action_distribution
from ppo_jax.networks import ActorOutput


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


def test_learned_std_log_prob_matches_scipy():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(6, 2)).astype(np.float32)
    log_std = np.array([-0.5, 0.3], np.float32)
    actions = rng.normal(size=(6, 2)).astype(np.float32)
    policy = make_action_distribution(False, "learned")
    hp = PPOConfig(policy_std="learned").hyperparams()
    dist = policy.dist(ActorOutput(jnp.asarray(mean), jnp.asarray(log_std)), hp)
    want = [
        multivariate_normal(mean[i], np.diag(np.exp(2 * log_std))).logpdf(actions[i])
        for i in range(6)
    ]
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(actions)), want, rtol=1e-5)
    np.testing.assert_array_equal(policy.mode(ActorOutput(mean, log_std)), mean)


def test_min_std_floors_the_learned_std_and_keeps_its_gradient():
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(5, 2)).astype(np.float32)
    log_std = np.array([-6.0, 0.2], np.float32)  # std 0.0025 and 1.22
    actions = rng.normal(size=(5, 2)).astype(np.float32)
    policy = make_action_distribution(False, "learned")
    hp = PPOConfig(policy_std="learned", min_std=0.1).hyperparams()

    def log_prob(log_std):
        out = ActorOutput(jnp.asarray(mean), log_std)
        return policy.dist(out, hp).log_prob(jnp.asarray(actions)).sum()

    std = 0.1 + np.exp(log_std.astype(np.float64))
    want = sum(
        multivariate_normal(mean[i], np.diag(std**2)).logpdf(actions[i])
        for i in range(5)
    )
    np.testing.assert_allclose(log_prob(jnp.asarray(log_std)), want, rtol=1e-5)
    dist = policy.dist(ActorOutput(jnp.asarray(mean), jnp.asarray(log_std)), hp)
    np.testing.assert_allclose(
        dist.entropy()[0], np.sum(0.5 * np.log(2 * np.pi * np.e * std**2)), rtol=1e-5
    )
    # Unlike a clip at the floor, the log-std below it still gets a gradient.
    assert np.all(np.abs(jax.grad(log_prob)(jnp.asarray(log_std))) > 0)


def test_min_std_zero_is_exactly_the_unfloored_std():
    out = ActorOutput(jnp.zeros((3, 2)), jnp.asarray([-30.0, 1.5], jnp.float32))
    policy = make_action_distribution(False, "learned")
    floored = policy.dist(out, PPOConfig(policy_std="learned").hyperparams())
    np.testing.assert_array_equal(
        floored.stddev(), np.broadcast_to(np.exp(np.float32([-30.0, 1.5])), (3, 2))
    )


def test_categorical_log_prob_entropy_and_mode():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], np.float32)
    actions = np.array([1, 0])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    policy = make_action_distribution(True, None)
    dist = policy.dist(ActorOutput(jnp.asarray(logits), None), None)
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(actions)), np.log(probs[[0, 1], actions]), rtol=1e-6
    )
    np.testing.assert_allclose(
        dist.entropy(), -(probs * np.log(probs)).sum(1), rtol=1e-5
    )
    mode = policy.mode(ActorOutput(jnp.asarray(logits), None))
    assert mode.dtype == jnp.int32
    np.testing.assert_array_equal(mode, [1, 2])
