"""Pipeline options: truncation bootstrap, action clipping, discrete actions,
orthogonal init, and a run with every option on."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from conftest import make_spec

from ppo_jax import PPOConfig, build_pipeline, make_train
from ppo_jax.networks.mlp import make_mlp_networks


def rollout_of(config, seed=0):
    pipeline = build_pipeline(config)
    hp = config.hyperparams()
    runner = jax.jit(pipeline.init)(jax.random.key(seed), hp)
    envs, traj, stats = jax.jit(pipeline.rollout)(
        runner.agent.actor_params, runner.envs, jax.random.key(seed + 1), hp
    )
    return traj, stats


def pendulum_step(obs, action):
    """Pendulum-v1's dynamics by hand (g=10, m=l=1, dt=0.05, |u|<=2, |w|<=8)."""
    theta = np.arctan2(obs[..., 1], obs[..., 0])
    u = np.clip(action[..., 0], -2.0, 2.0)
    w = np.clip(obs[..., 2] + (15.0 * np.sin(theta) + 3.0 * u) * 0.05, -8, 8)
    theta = theta + w * 0.05
    return np.stack([np.cos(theta), np.sin(theta), w], axis=-1)


def test_truncation_bootstrap_sees_the_pre_reset_observation():
    config = PPOConfig(
        num_envs=3, rollout_length=8, max_episode_steps=5, bootstrap_truncation=True
    )
    traj, _ = rollout_of(config)
    obs, final = np.asarray(traj.obs), np.asarray(traj.final_obs)
    truncated = np.asarray(traj.truncated)
    # Every env's episode hits the 5-step limit at t=4 and nowhere else.
    np.testing.assert_array_equal(truncated.any(axis=1), [t == 4 for t in range(8)])
    assert truncated[4].all()
    # Away from the episode end the pre-reset observation is the next one...
    for t in (0, 1, 2, 3, 5, 6):
        np.testing.assert_allclose(final[t], obs[t + 1], rtol=1e-6)
    # ...at the end it is the state the dynamics reached, not the reset obs.
    want = pendulum_step(obs[4], np.asarray(traj.action[4]))
    np.testing.assert_allclose(final[4], want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(final[4], obs[5], atol=1e-2)


def test_clip_actions_sends_clipped_actions_and_stores_the_sample():
    # MountainCarContinuous charges 0.1 * action^2 on the action it receives,
    # so rewards show whether the env got the clipped (|a| <= 1) action.
    base = PPOConfig(
        env_name="MountainCarContinuous-v0",
        num_envs=4,
        rollout_length=64,
        action_variance=25.0,
    )
    clipped, _ = rollout_of(base.replace(clip_actions=True))
    assert np.abs(np.asarray(clipped.action)).max() > 3  # stored unclipped
    assert np.asarray(clipped.reward).min() >= -0.1 - 1e-6
    raw, _ = rollout_of(base)
    assert np.asarray(raw.reward).min() < -0.5


def test_discrete_env_gets_a_categorical_policy():
    config = PPOConfig.from_preset(
        "tuned",
        env_name="CartPole-v1",
        num_envs=4,
        rollout_length=16,
        total_timesteps=128,
    )
    assert config.policy_std is None
    traj, _ = rollout_of(config)
    assert traj.action.shape == (16, 4) and traj.action.dtype == jnp.int32
    assert set(np.unique(traj.action)) <= {0, 1}
    # log-probs of two actions: in [log(small), 0]
    assert np.all(np.asarray(traj.log_prob) <= 0)
    runner, metrics = jax.jit(make_train(config))(jax.random.key(0))
    assert np.isfinite(metrics.actor_loss).all() and np.isfinite(metrics.entropy).all()
    assert 0 < float(metrics.entropy[0]) <= np.log(2) + 1e-6


def test_every_option_on_runs_deterministically():
    config = PPOConfig(
        num_envs=4,
        rollout_length=32,
        total_timesteps=4 * 32 * 3,
        max_episode_steps=50,
        hidden_sizes=(16, 16),
        advantage="gae",
        num_minibatches=4,
        update_epochs=3,
        ent_coef=0.01,
        vf_coef=0.5,
        optimizer="joint",
        max_grad_norm=0.5,
        adam_eps=1e-5,
        anneal_lr=True,
        target_kl=0.05,
        clip_value=True,
        policy_std="learned",
        init_log_std=-0.5,
        min_std=0.05,
        clip_actions=True,
        bounded_mean=True,
        activation="tanh",
        ortho_init=True,
        normalize_obs=True,
        normalize_reward=True,
        bootstrap_truncation=True,
    ).validate()
    train = jax.jit(make_train(config))
    runner, metrics = train(jax.random.key(0))
    again, metrics_again = train(jax.random.key(0))
    for a, b in zip(
        jax.tree.leaves(metrics), jax.tree.leaves(metrics_again), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for name in ("actor_loss", "critic_loss", "entropy", "approx_kl", "epochs"):
        assert np.isfinite(getattr(metrics, name)).all(), name
    assert 1 <= float(metrics.epochs.min()) <= 3
    log_std = runner.agent.actor_params["params"]["log_std"]
    assert log_std.shape == (1,) and abs(float(log_std[0]) + 0.5) < 0.1
    obs_stats = runner.envs.obs_stats
    assert float(obs_stats.count) > 3 * 4 * 32  # every step's observations
    assert float(runner.envs.return_stats.count) > 3 * 4 * 32


def test_orthogonal_init_is_orthogonal():
    config = PPOConfig(activation="tanh", ortho_init=True)
    actor = make_mlp_networks(make_spec(action_dim=2), config).actor
    params = actor.init(jax.random.key(0), config.hyperparams())["params"]
    k0, k1, k2 = (np.asarray(params[f"Dense_{i}"]["kernel"]) for i in range(3))
    np.testing.assert_allclose(k0 @ k0.T, 2.0 * np.eye(3), atol=1e-5)  # [3, 64]
    np.testing.assert_allclose(k1.T @ k1, 2.0 * np.eye(64), atol=1e-4)
    np.testing.assert_allclose(k2.T @ k2, 1e-4 * np.eye(2), atol=1e-8)  # gain 0.01
    assert not np.any(params["Dense_0"]["bias"])


def test_vmapped_orthogonal_init_over_seeds_finishes():
    # Batched QR under jit(vmap(init)) was seen to deadlock on CPU (jax
    # 0.10.2); the init loops over seeds instead. A subprocess with a timeout
    # turns a hang into a failure instead of a stuck CI.
    code = textwrap.dedent(
        """
        import jax
        from ppo_jax import PPOConfig, build_pipeline
        config = PPOConfig.from_preset("tuned", total_timesteps=4096)
        pipeline = build_pipeline(config)
        keys = jax.random.split(jax.random.key(0), 8)
        hp = config.hyperparams()
        runner = jax.jit(jax.vmap(pipeline.init, in_axes=(0, None)))(keys, hp)
        print(jax.tree.leaves(runner.agent.actor_params)[1].shape)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "(8, 3, 64)" in proc.stdout
