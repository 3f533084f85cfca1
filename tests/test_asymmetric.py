"""Asymmetric actor-critic: with ``critic_obs_key`` the critic reads another
key of dict observations (privileged information), the actor never does.

``PrivilegedMatch`` (tests/user_components.py): the actor's key shows the card
to name, the privileged key the time in the episode, i.e. how many rewards are
left: the value, but nothing of the action.
"""

from pathlib import Path

import jax
import numpy as np
import pytest
import user_components as uc
from conftest import run_cli, run_fast

from ppo_jax import ConfigError, PPOConfig, build_pipeline, load_policy, make_train
from ppo_jax.envs.contract import AsymmetricObservation
from ppo_jax.evaluate import main as evaluate_main
from ppo_jax.run.rundir import read_rows

TESTS = Path(__file__).resolve().parent
ASYMMETRIC = PPOConfig(
    env_name="user_components:PrivilegedMatch",
    obs_key="state",
    critic_obs_key="privileged_state",
    policy_std=None,
    normalize_obs=True,
    num_envs=8,
    rollout_length=32,
    total_timesteps=8 * 32 * 20,
    update_epochs=4,
    num_minibatches=4,
    lr=1e-2,
    hidden_sizes=(16,),
)


def leaf_shapes(params):
    return {leaf.shape for leaf in jax.tree.leaves(params)}


def test_privileged_observations_reach_the_critic_only():
    pipeline = build_pipeline(ASYMMETRIC, env=uc.PrivilegedMatch())
    symmetric = build_pipeline(
        ASYMMETRIC.replace(critic_obs_key=None), env=uc.PrivilegedMatch()
    )
    spec = pipeline.spec
    assert (spec.obs_shape, spec.critic_obs_shape) == ((4,), (2,))
    assert spec.for_critic().obs_shape == (2,)

    hp, key = ASYMMETRIC.hyperparams(), jax.random.key(3)
    runner = pipeline.init(key, hp)
    # First layers: the actor takes the 4-wide card, the critic the 2-wide time.
    assert (4, 16) in leaf_shapes(runner.agent.actor_params)
    assert (2, 16) not in leaf_shapes(runner.agent.actor_params)
    assert (2, 16) in leaf_shapes(runner.agent.critic_params)
    assert (4, 16) not in leaf_shapes(runner.agent.critic_params)

    envs, traj, _ = jax.jit(pipeline.rollout)(
        runner.agent.actor_params, runner.envs, key, hp
    )
    assert isinstance(traj.obs, AsymmetricObservation)
    assert traj.obs.actor.shape == (32, 8, 4)
    assert traj.obs.critic.shape == (32, 8, 2)

    # The actor acts exactly as it would without privileged observations (same
    # key, same initial actor): same actions, same log-probabilities.
    sym_runner = symmetric.init(key, hp)
    _, sym_traj, _ = jax.jit(symmetric.rollout)(
        sym_runner.agent.actor_params, sym_runner.envs, key, hp
    )
    np.testing.assert_array_equal(traj.action, sym_traj.action)
    np.testing.assert_array_equal(traj.log_prob, sym_traj.log_prob)
    np.testing.assert_array_equal(traj.obs.actor, sym_traj.obs)

    # Statistics per key, against the closed forms of 33 steps of 8 envs from
    # reset: the card is uniform (mean 1/4 per entry); elapsed time runs
    # 0, 1/8, ..., 7/8 in whole episodes (mean 7/16) from a reset.
    stats = envs.obs_stats
    assert stats.actor.mean.shape == (4,) and stats.critic.mean.shape == (2,)
    np.testing.assert_allclose(stats.actor.mean, 0.25, atol=0.06)
    elapsed = np.arange(33) % 8 / 8
    np.testing.assert_allclose(
        stats.critic.mean, [elapsed.mean(), 1 - elapsed.mean()], atol=1e-4
    )
    np.testing.assert_allclose(stats.critic.var, elapsed.var(), rtol=1e-3)


def test_privileged_critic_learns_the_value_the_actor_cannot_see():
    """The critic's loss with the time in view against without (measured,
    4 seeds: 0.003-0.005 vs 4.8), while both policies learn the card."""
    keys = jax.random.split(jax.random.key(0), 2)
    losses = {}
    for critic_obs_key in ("privileged_state", None):
        config = ASYMMETRIC.replace(critic_obs_key=critic_obs_key)
        train = make_train(config, env=uc.PrivilegedMatch())
        _, metrics = run_fast(jax.vmap(train), keys)
        assert (np.asarray(metrics.mean_return)[:, -5:].mean(-1) > 6.5).all()
        losses[critic_obs_key] = np.asarray(metrics.critic_loss)[:, -5:].mean(-1)
    assert (losses["privileged_state"] < 0.1).all(), losses
    assert (losses[None] > 1.0).all(), losses


ARGS = [
    "--env", "user_components:PrivilegedMatch", "--obs-key", "state",
    "--policy-std", "none", "--num-envs", "8", "--rollout-length", "32",
    "--total-timesteps", "2560", "--update-epochs", "4", "--num-minibatches", "4",
    "--lr", "1e-2", "--hidden-sizes", "16", "--normalize-obs",
]  # fmt: skip


def test_asymmetric_run_from_the_cli_evaluates_and_loads(tmp_path, monkeypatch):
    run_dir = tmp_path / "privileged"
    proc = run_cli(
        *ARGS, "--critic-obs-key", "privileged_state", "--run-dir", str(run_dir)
    )
    assert proc.returncode == 0, proc.stderr
    assert read_rows(run_dir)[-1]["mean_return"] > 6.5
    monkeypatch.syspath_prepend(str(TESTS))
    assert evaluate_main([str(run_dir), "--episodes", "4"]) == 0
    # The policy needs the actor's observation alone.
    policy = load_policy(run_dir)
    cards = np.eye(4, dtype=np.float32)
    np.testing.assert_array_equal(policy(cards), np.arange(4))


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--critic-obs-key", "pixels"],
            "critic_obs_key='pixels' is not allowed: one of the keys of "
            "user_components:PrivilegedMatch's dict observations "
            "(privileged_state, state)",
        ),
        (
            [
                "--env",
                "Pendulum-v1",
                "--obs-key",
                "none",
                "--policy-std",
                "fixed",
                "--critic-obs-key",
                "state",
            ],  # fmt: skip
            "critic_obs_key='state' is not allowed: none for Pendulum-v1, whose "
            "observations are arrays",
        ),
    ],
)
def test_bad_critic_key_is_one_sentence_before_compiling(tmp_path, argv, message):
    run_dir = tmp_path / "refused"
    proc = run_cli(*ARGS, *argv, "--run-dir", str(run_dir))
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_critic_key_of_a_different_shape_per_step_is_refused():
    class Shrinking(uc.PrivilegedMatch):
        def step(self, key, state, action, params):
            obs, *rest, info = super().step(key, state, action, params)
            return (
                {**obs, "privileged_state": obs["privileged_state"][:1]},
                *rest,
                info,
            )

    with pytest.raises(ConfigError, match="has shape \\(1,\\) in step's observation"):
        build_pipeline(ASYMMETRIC, env=Shrinking())
