"""The Craftax family: Craftax-Classic-Symbolic-v1's spec, refusals (in Python
and on the command line, before compiling), the vmapped step's own reset
batching checked against the per-env step, and a tiny run through make_train.

Craftax compiles slowly on a CPU (world generation): the two compiled
programs here are built with XLA's backend optimizations off (about 15 s
each instead of 25-30 s on 2 cores)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli

from ppo_jax import PPOConfig, make_train
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import make_env

pytest.importorskip("craftax")

from ppo_jax.envs import craftax as family  # noqa: E402

NAME = "craftax/Craftax-Classic-Symbolic-v1"
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compile_fast(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def test_classic_symbolic_spec_and_time_limit():
    env, params = family.make("Craftax-Classic-Symbolic-v1", NAME, None)
    assert params.max_steps_in_episode == 10_000  # craftax's own limit
    setup = make_env(PPOConfig(env_name=NAME, policy_std=None, max_episode_steps=50))
    spec = setup.spec
    assert spec.obs_shape == (1345,) and spec.obs_dtype == np.float32
    assert spec.discrete and spec.action_dim == 17
    assert spec.max_episode_steps == 50  # max_episode_steps replaced it


@pytest.mark.parametrize(
    "task, backend, match",
    [
        ("Craftax-Clasic-Symbolic-v1", None, "did you mean Craftax-Classic-Symbolic"),
        ("Crafter", None, "one of Craftax-Classic-Symbolic-v1"),
        ("Craftax-Symbolic-v1", "gpu", "none for craftax/Craftax-Symbolic-v1"),
    ],
)
def test_bad_names_and_backends_are_one_sentence(task, backend, match):
    with pytest.raises(ConfigError, match=match) as error:
        family.make(task, f"craftax/{task}", backend)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")


def test_unknown_name_on_the_command_line_exits_2_before_compiling():
    proc = run_cli("--env", "craftax/Craftax-Classic-Symbolic-v2", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "did you mean Craftax-Classic-Symbolic-v1" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "compil" not in proc.stdout


def leaves(tree):
    def raw(x):
        is_key = jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
        return np.asarray(jax.random.key_data(x) if is_key else x)

    return [raw(x) for x in jax.tree.leaves(tree)]


def test_vmapped_step_resets_only_ended_envs_as_the_per_env_step_does():
    # 4 envs (at most 1 world generated, else all 4) against the per-env step,
    # which generates a world for every env: no env ended, one (truncated at
    # the 10-step limit) and two (one more terminated: no health left).
    env, params = family.make("Craftax-Classic-Symbolic-v1", NAME, None)
    params = params.replace(max_steps_in_episode=10)

    def both(timestep, dead):
        keys = jax.random.split(jax.random.key(0), 4)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        health = jnp.where(dead, 0, state.player_health)
        state = state.replace(timestep=timestep, player_health=health)
        actions = jnp.arange(4, dtype=jnp.int32)
        args = (jax.random.split(jax.random.key(1), 4), state, actions, params)
        batched = jax.vmap(env.step, in_axes=(0, 0, 0, None))(*args)
        per_env = jax.vmap(env._step, in_axes=(0, 0, 0, None))(*args)
        return batched, per_env

    limit = jnp.array([9, 0, 0, 0], jnp.int32)
    cases = [
        (jnp.zeros(4, jnp.int32), [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]),
        (limit, [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]),
        (limit, [0, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]),
    ]
    step = compile_fast(both, cases[0][0], jnp.zeros(4, bool))
    for timestep, dead, terminated, truncated in cases:
        batched, per_env = step(timestep, jnp.array(dead, bool))
        obs, state, _, term, trunc, info = batched
        assert term.tolist() == terminated and trunc.tolist() == truncated
        for a, b in zip(leaves(batched), leaves(per_env), strict=True):
            if np.issubdtype(a.dtype, np.floating):  # batch sizes: float rounding
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(a, b)
        ended = np.asarray(term | trunc)
        assert (np.asarray(state.timestep)[ended] == 0).all()
        kept = np.asarray(info["final_observation"])[~ended]
        np.testing.assert_array_equal(np.asarray(obs)[~ended], kept)


def test_tiny_run_through_make_train():
    # 4 envs x 8 steps, 2 iterations, 5-step episodes: every env's episode is
    # cut by the limit at steps 5, 10 and 15 (bootstrapped from its final
    # observation); no player dies that soon.
    config = PPOConfig(
        env_name=NAME,
        policy_std=None,
        num_envs=4,
        rollout_length=8,
        total_timesteps=64,
        update_epochs=2,
        num_minibatches=2,
        hidden_sizes=(16,),
        advantage="gae",
        max_episode_steps=5,
        bootstrap_truncation=True,
    )
    # 2 seeds vmapped: the envs' resets see a second vmap (seeds x envs).
    train = jax.vmap(make_train(config))
    keys = jax.random.split(jax.random.key(0), 2)
    runner, metrics = compile_fast(train, keys)(keys)
    assert runner.envs.obs.shape == (2, 4, 1345)
    assert metrics.num_episodes.tolist() == [[4, 8], [4, 8]]
    assert (np.asarray(metrics.mean_length) <= 5).all()
    for name in ("mean_return", "actor_loss", "critic_loss", "entropy"):
        assert np.isfinite(np.asarray(getattr(metrics, name))).all(), name
    assert np.asarray(metrics.all_finite).all()
