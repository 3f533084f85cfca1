"""The Gaussian policies (fixed, learned, floored and bounded-mean std) and the
Categoricals against closed forms (scipy's densities, numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_spec
from scipy.stats import multivariate_normal

from ppo_jax import ConfigError, PPOConfig
from ppo_jax.algo.distributions import fixed_variance_gaussian, make_action_distribution
from ppo_jax.algo.policy import make_policy
from ppo_jax.envs import check_env_options
from ppo_jax.networks import ActorOutput, make_networks


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


def bounded_policy(bounded_mean):
    """A learned-std policy over 2 actions in [-3, 1] x [0, 4] (off-center on
    purpose), its actor's output layer scaled up so raw means cross the
    bounds; returns (policy, params, raw actor output for random obs, obs)."""
    spec = make_spec((3,), 2)._replace(
        action_low=np.float32([-3.0, 0.0]), action_high=np.float32([1.0, 4.0])
    )
    config = PPOConfig(
        policy_std="learned", bounded_mean=bounded_mean, hidden_sizes=(8,)
    )
    nets = make_networks(spec, config)
    params = nets.actor.init(jax.random.key(0), config.hyperparams())
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 50 if "Dense_1" in jax.tree_util.keystr(path) else x,
        params,
    )
    obs = jnp.asarray(np.random.default_rng(3).normal(size=(64, 3)), jnp.float32)
    raw = np.asarray(nets.actor.apply(params, obs).out, np.float64)
    return make_policy(nets.actor, spec, config), params, raw, obs


def test_bounded_mean_squashes_into_the_bounds_for_acting_and_scoring():
    policy, params, raw, obs = bounded_policy(True)
    assert np.abs(raw).max() > 5  # far outside: tanh saturates somewhere
    want_mean = np.float64([-1.0, 2.0]) + np.float64([2.0, 2.0]) * np.tanh(raw)
    hp = PPOConfig(policy_std="learned").hyperparams()
    mode = np.asarray(policy.mode(params, (), obs))
    np.testing.assert_allclose(mode, want_mean, rtol=0, atol=1e-5)
    assert np.all(mode >= [-3.0, 0.0]) and np.all(mode <= [1.0, 4.0])
    # The distribution scores stored actions around the squashed mean.
    actions = np.random.default_rng(4).normal(size=(64, 2)).astype(np.float32)
    std = np.exp(np.asarray(params["params"]["log_std"], np.float64))
    want = [
        multivariate_normal(want_mean[i], np.diag(std**2)).logpdf(actions[i])
        for i in range(64)
    ]
    got = policy.dist(params, obs, hp).log_prob(jnp.asarray(actions))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    sample = policy.sample(params, (), obs, jax.random.key(5), hp)
    np.testing.assert_allclose(
        sample.log_prob,
        policy.dist(params, obs, hp).log_prob(sample.action),
        rtol=1e-6,
        atol=1e-5,
    )


def test_bounded_mean_off_leaves_the_mean_as_the_actor_output():
    policy, params, raw, obs = bounded_policy(False)
    np.testing.assert_allclose(policy.mode(params, (), obs), raw, rtol=1e-6)


def test_bounded_mean_needs_finite_bounds():
    spec = make_spec((3,), 2)._replace(action_high=np.float32([1.0, np.inf]))
    config = PPOConfig(policy_std="learned", bounded_mean=True)
    with pytest.raises(ConfigError, match="whose action bounds are not all finite"):
        check_env_options(config, spec, "the env")
    check_env_options(config.replace(bounded_mean=False), spec, "the env")


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
