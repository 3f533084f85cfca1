"""Rewards-to-go and advantage normalization against plain-Python references."""

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax.algo.returns import (
    generalized_advantages,
    normalize_advantages,
    rewards_to_go,
)


def tutorial_rewards_to_go(rewards, dones, gamma, bootstrap):
    """Port of the tutorial's backward loop, one env column at a time.

    The column is split into episodes at each done; each episode is walked
    backwards from 0, except the last one when the batch end cuts it, which
    starts from the bootstrap value.
    """
    T, N = rewards.shape
    out = np.zeros((T, N))
    for n in range(N):
        episodes, steps = [], []
        for t in range(T):
            steps.append(t)
            if dones[t, n]:
                episodes.append((steps, 0.0))
                steps = []
        if steps:
            episodes.append((steps, float(bootstrap[n])))
        for steps, start in episodes:
            discounted = start
            for t in reversed(steps):
                discounted = float(rewards[t, n]) + discounted * gamma
                out[t, n] = discounted
    return out


@pytest.mark.parametrize("seed", range(5))
def test_rewards_to_go_matches_tutorial_loop(seed):
    rng = np.random.default_rng(seed)
    T, N = rng.integers(1, 40), rng.integers(1, 6)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    dones = rng.random((T, N)) < 0.15
    bootstrap = rng.normal(size=N).astype(np.float32) * 10
    gamma = float(rng.uniform(0.8, 0.999))
    got = rewards_to_go(rewards, dones, gamma, bootstrap)
    want = tutorial_rewards_to_go(rewards, dones, gamma, bootstrap)
    assert got.shape == (T, N) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_rewards_to_go_hand_values():
    # One env, episode ends at t=1, the second is cut at the batch end.
    rewards = np.array([[1.0], [2.0], [3.0]], np.float32)
    dones = np.array([[False], [True], [False]])
    got = rewards_to_go(rewards, dones, 0.5, np.array([10.0], np.float32))
    np.testing.assert_allclose(got[:, 0], [1 + 0.5 * 2, 2, 3 + 0.5 * 10])


def test_rewards_to_go_traced_gamma_jit_and_vmap():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(20, 3)).astype(np.float32)
    dones = rng.random((20, 3)) < 0.2
    boot = rng.normal(size=3).astype(np.float32)
    gammas = jnp.array([0.9, 0.99], jnp.float32)
    batched = jax.jit(jax.vmap(rewards_to_go, in_axes=(None, None, 0, None)))(
        rewards, dones, gammas, boot
    )
    for i, g in enumerate([0.9, 0.99]):
        want = tutorial_rewards_to_go(rewards, dones, g, boot)
        np.testing.assert_allclose(batched[i], want, rtol=1e-5, atol=1e-4)


def test_normalize_advantages_uses_unbiased_std_like_torch():
    values = [0.5, -1.0, 2.0, 3.5, 0.0, -2.25]
    mean, std = statistics.fmean(values), statistics.stdev(values)  # n-1
    want = [(v - mean) / (std + 1e-10) for v in values]
    got = normalize_advantages(jnp.array(values, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert abs(float(got.mean())) < 1e-6


def python_gae(rewards, values, dones, gamma, lam, bootstrap):
    """Textbook GAE, one env column and one step at a time."""
    T, N = rewards.shape
    out = np.zeros((T, N))
    for n in range(N):
        advantage = 0.0
        for t in reversed(range(T)):
            next_value = bootstrap[n] if t == T - 1 else values[t + 1, n]
            if dones[t, n]:
                next_value, advantage = 0.0, 0.0
            delta = rewards[t, n] + gamma * next_value - values[t, n]
            advantage = delta + gamma * lam * advantage
            out[t, n] = advantage
    return out


@pytest.mark.parametrize("seed", range(4))
def test_gae_matches_python_reference(seed):
    rng = np.random.default_rng(100 + seed)
    T, N = rng.integers(1, 30), rng.integers(1, 5)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    dones = rng.random((T, N)) < 0.2
    boot = rng.normal(size=N).astype(np.float32)
    gamma, lam = float(rng.uniform(0.9, 0.999)), float(rng.uniform(0.5, 1.0))
    got = generalized_advantages(rewards, values, dones, gamma, lam, boot)
    want = python_gae(rewards, values, dones, gamma, lam, boot)
    assert got.shape == (T, N) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gae_with_lambda_one_is_rewards_to_go_minus_values():
    rng = np.random.default_rng(7)
    rewards = rng.normal(size=(25, 3)).astype(np.float32)
    values = rng.normal(size=(25, 3)).astype(np.float32)
    dones = rng.random((25, 3)) < 0.15
    boot = rng.normal(size=3).astype(np.float32)
    advantages = generalized_advantages(rewards, values, dones, 0.97, 1.0, boot)
    returns = rewards_to_go(rewards, dones, 0.97, boot)
    np.testing.assert_allclose(advantages + values, returns, rtol=1e-4, atol=1e-4)
