"""The NAVIX family: the adapter step for step against navix's own ``step``
(terminations, truncations at the params' limit, a stochastic task, the
auto-reset's final observation), Navix-Empty-5x5-v0's spec, refusals, and a
short run through make_train that learns Empty-5x5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_fast

from ppo_jax import PPOConfig, make_train
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import make_env

navix = pytest.importorskip("navix")

from ppo_jax.envs import navix as family  # noqa: E402

NAME = "navix/Navix-Empty-5x5-v0"
# MiniGrid's actions: 0 turn left, 1 turn right, 2 forward.
LEFT, RIGHT, FORWARD = 0, 1, 2


def test_empty_5x5_spec_and_time_limit():
    setup = make_env(PPOConfig(env_name=NAME, policy_std=None, clip_actions=False))
    spec = setup.spec
    # navix's default observation: the whole 5x5 grid, a symbolic triple per cell.
    assert spec.obs_shape == (5, 5, 3) and spec.obs_dtype == np.uint8
    assert spec.discrete and spec.action_dim == 7
    assert spec.max_episode_steps == 100  # navix.make's own max_steps
    short = PPOConfig(
        env_name=NAME, policy_std=None, clip_actions=False, max_episode_steps=7
    )
    assert make_env(short).params.max_steps_in_episode == 7


def side_by_side(task, seed, actions, limit=None):
    """The adapter and navix's own ``step`` from one reset key (``seed``), the
    same actions: per step, the adapter's ``(obs, reward, terminated,
    truncated, final_observation)`` and navix's ``(observation, reward,
    step_type)`` (navix built with ``max_steps=limit``, the adapter given it
    as params), and the observation of a reset from each step's key."""
    env, params = family.make(task, f"navix/{task}", None)
    if limit is not None:
        params = params.replace(max_steps_in_episode=limit)
    reference = navix.make(task, max_steps=limit or env.env.max_steps)
    actions = jnp.asarray(actions, jnp.int32)
    keys = jax.random.split(jax.random.key(100), len(actions))

    @jax.jit
    def run(key):
        obs, state = env.reset(key, params)
        timestep = reference.reset(key)

        def one(carry, x):
            state, timestep = carry
            step_key, action = x
            obs, state, reward, terminated, truncated, info = env.step(
                step_key, state, action, params
            )
            timestep = reference.step(timestep, action)
            ours = (obs, reward, terminated, truncated, info["final_observation"])
            theirs = (timestep.observation, timestep.reward, timestep.step_type)
            reset = reference.reset(step_key).observation
            return (state, timestep), (ours, theirs, reset)

        _, out = jax.lax.scan(one, (state, timestep), (keys, actions))
        return obs, timestep.observation, out

    return jax.tree.map(np.asarray, run(jax.random.key(seed)))


TERMINATION, TRUNCATION = 2, 1  # navix's StepType


@pytest.mark.parametrize(
    "task, seed, actions, limit, end, last_reward",
    [
        # Forward twice, turn right (south), forward twice: the goal (3, 3).
        ("Navix-Empty-5x5-v0", 0, [FORWARD, FORWARD, RIGHT, FORWARD, FORWARD],
         None, TERMINATION, 1.0),
        # Turning on the spot until a 3-step limit.
        ("Navix-Empty-5x5-v0", 0, [LEFT] * 3, 3, TRUNCATION, 0.0),
        # Two obstacles moved at random by navix's own key (the reset's): the
        # same moves as navix's, 12 steps to the limit, and a hit at step 5
        # (navix's Dynamic-Obstacles: terminated, reward 0).
        ("Navix-Dynamic-Obstacles-6x6-v0", 1, [LEFT, RIGHT] * 6, 12, TRUNCATION, 0.0),
        ("Navix-Dynamic-Obstacles-6x6-v0", 3, [LEFT, RIGHT] * 2 + [LEFT], None,
         TERMINATION, 0.0),
    ],
)  # fmt: skip
def test_steps_match_navix_then_reset_from_the_step_key(
    task, seed, actions, limit, end, last_reward
):
    first_obs, navix_first, (ours, theirs, resets) = side_by_side(
        task, seed, actions, limit
    )
    obs, reward, terminated, truncated, final = ours
    navix_obs, navix_reward, step_type = theirs
    np.testing.assert_array_equal(first_obs, navix_first)
    assert obs.dtype == np.uint8 and reward.dtype == np.float32
    assert terminated.dtype == truncated.dtype == np.bool_
    # One episode, ended by the last action (navix resets a step later).
    assert step_type.tolist() == [0] * (len(actions) - 1) + [end]
    np.testing.assert_array_equal(final, navix_obs)
    np.testing.assert_array_equal(reward, navix_reward)
    assert reward[-1] == last_reward
    np.testing.assert_array_equal(terminated, step_type == TERMINATION)
    np.testing.assert_array_equal(truncated, step_type == TRUNCATION)
    np.testing.assert_array_equal(obs[:-1], navix_obs[:-1])
    # After the end: a fresh episode, reset from the step's key, while
    # final_observation holds the one that ended.
    np.testing.assert_array_equal(obs[-1], resets[-1])
    assert not np.array_equal(obs[-1], final[-1])


def test_limit_above_navix_max_steps_is_not_a_truncation():
    # The adapter's env has navix's max_steps 100; with params of 150 its
    # step 100 goes on (navix marks it a truncation), and step 150 truncates.
    env, params = family.make("Navix-Empty-5x5-v0", NAME, None)
    params = params.replace(max_steps_in_episode=150)

    @jax.jit
    def run(key):
        _, state = env.reset(key, params)

        def one(state, step_key):
            _, state, _, terminated, truncated, _ = env.step(
                step_key, state, jnp.int32(LEFT), params
            )
            return state, (terminated, truncated)

        return jax.lax.scan(one, state, jax.random.split(key, 150))[1]

    terminated, truncated = jax.tree.map(np.asarray, run(jax.random.key(0)))
    assert not terminated.any()
    assert np.flatnonzero(truncated).tolist() == [149]


@pytest.mark.parametrize(
    "task, backend, match",
    [
        ("Navix-Empty-5x5-v1", None, "did you mean Navix-Empty-5x5-v0"),
        ("MiniGrid-DoorKey-8x8-v0", None, "did you mean Navix-DoorKey-8x8-v0"),
        ("MiniGrid-LockedRoom-v0", None, "navix does not implement"),
        ("Pong", None, "one of the 41 names navix registers"),
        ("Navix-Empty-5x5-v0", "gpu", "none for navix/Navix-Empty-5x5-v0"),
    ],
)
def test_bad_names_and_backends_are_one_sentence(task, backend, match):
    with pytest.raises(ConfigError, match=match) as error:
        family.make(task, f"navix/{task}", backend)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")


def test_ppo_learns_empty_5x5():
    # 32 envs x 32 steps x 20 iterations (20k steps), 30-step episodes: a
    # random policy reaches the goal in about 1 episode of 10 (return 1,
    # else 0); after 20 iterations nearly every episode does, in 5-12 steps
    # (5 is the shortest path). Normalized observations matter: on the raw
    # uint8 symbols some seeds never learn. 48 seeds of 48 tried: first three
    # iterations' mean return at most 0.17, last three's at least 0.94.
    config = PPOConfig(
        env_name=NAME,
        policy_std=None,
        clip_actions=False,
        num_envs=32,
        rollout_length=32,
        total_timesteps=32 * 32 * 20,
        max_episode_steps=30,
        update_epochs=4,
        num_minibatches=4,
        lr=1e-3,
        advantage="gae",
        ent_coef=0.01,
        normalize_obs=True,
    )
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = run_fast(jax.vmap(make_train(config)), keys)
    returns = np.asarray(metrics.mean_return)  # [seed, iteration]
    lengths = np.asarray(metrics.mean_length)
    assert np.isfinite(returns).all()  # 30-step episodes end in every iteration
    first, last = returns[:, :3].mean(axis=1), returns[:, -3:].mean(axis=1)
    assert (first < 0.3).all() and (last > 0.8).all(), (first, last)
    assert (lengths[:, -3:].mean(axis=1) < 15).all(), lengths[:, -3:]
