"""The Jumanji family: the adapter step for step against jumanji's own (Game2048
to its game over, Snake's death and its time limit), action and mask layouts
(per part, joint, none, a Box), specs through make_env, refusals (one sentence
each, the downloading Sokoban before anything is built), jit and vmap, and a
short masked-policy run that learns Game2048."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import refused_before_building, run_fast

from ppo_jax import PPOConfig, make_train
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import make_env
from ppo_jax.envs.contract import MaskedObservation

jumanji = pytest.importorskip("jumanji")

from jumanji import specs  # noqa: E402
from jumanji.types import restart  # noqa: E402

from ppo_jax.envs import jumanji as family  # noqa: E402

# Snake's and Game2048's actions: 0 up, 1 right, 2 down, 3 left.
UP = 0


def raw(x):
    is_key = jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    return np.asarray(jax.random.key_data(x) if is_key else x)


def legal(mask):
    """A mask as the adapter gives it: all legal where jumanji allows none."""
    mask = np.asarray(mask).reshape(-1)
    return mask | ~mask.any()


def side_by_side(task, limit, pick, steps, ref_limit=None):
    """The adapter under ``limit`` and jumanji's own env (``time_limit=
    ref_limit`` when given) from one reset key, the same actions (``pick(i,
    jumanji's mask)``), jumanji reset with the step's key at its LAST. Checks
    observations, masks, rewards, final observations and states step by step;
    returns per step ``(terminated, truncated, reward, jumanji's LAST,
    jumanji's discount)``."""
    env, params = family.make(task, f"jumanji/{task}", None)
    params = params.replace(max_steps_in_episode=limit)
    kwargs = {} if ref_limit is None else {"time_limit": ref_limit}
    ref_env = jumanji.make(task, **kwargs)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    ref_reset, ref_step = jax.jit(ref_env.reset), jax.jit(ref_env.step)
    keys = jax.random.split(jax.random.key(7), steps + 1)

    def same(obs, ref_obs):
        assert isinstance(obs, MaskedObservation)
        fields = ref_obs._asdict()
        np.testing.assert_array_equal(obs.action_mask, legal(fields.pop("action_mask")))
        assert sorted(obs.obs) == sorted(fields)
        for name, value in fields.items():
            np.testing.assert_array_equal(obs.obs[name], value)

    obs, state = reset(keys[0], params)
    ref_state, ref = ref_reset(keys[0])
    same(obs, ref.observation)
    out = []
    for i, key in enumerate(keys[1:]):
        action = jnp.int32(pick(i, np.asarray(ref.observation.action_mask)))
        obs, state, reward, terminated, truncated, info = step(
            key, state, action, params
        )
        ref_state, ref = ref_step(ref_state, action)
        assert reward.dtype == jnp.float32 and reward.shape == ()
        assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
        np.testing.assert_allclose(reward, ref.reward, rtol=1e-6)
        same(info["final_observation"], ref.observation)
        out.append(
            (
                bool(terminated),
                bool(truncated),
                float(reward),
                bool(ref.last()),
                float(ref.discount),
            )
        )
        if bool(terminated) or bool(truncated):
            ref_state, ref = ref_reset(key)  # the reset uses the step's key
        same(obs, ref.observation)
        names = family.leaf_names(ref_state)  # the state's leaves by name
        assert sorted(state.inner) == sorted(names)
        for name, value in zip(names, jax.tree.leaves(ref_state), strict=True):
            np.testing.assert_array_equal(raw(state.inner[name]), raw(value))
    return out


def test_game2048_matches_jumanji_to_its_game_over():
    # Random legal moves end a game in 116 moves on average (32 games, longest
    # 220), this one at its 142nd; jumanji marks the game over LAST with
    # discount 0: terminated. The next game starts from the step's key.
    rng = np.random.default_rng(0)
    out = side_by_side(
        "Game2048-v1", 4000, lambda i, mask: rng.choice(np.flatnonzero(mask)), 160
    )
    ends = [i for i, (te, tr, *_) in enumerate(out) if te or tr]
    assert ends == [141] and out[141][:2] == (True, False)
    assert all(te == last for te, _, _, last, _ in out)
    assert sum(r for _, _, r, _, _ in out[: ends[0] + 1]) > 0  # merged tiles


def test_snake_death_terminates_and_its_time_limit_truncates():
    # Up until the wall, and into it (an illegal move, which the adapter does
    # not stop): the snake dies, terminated. Then legal moves to the limit of
    # 12 steps: jumanji's own Snake (time_limit=12) calls that step a
    # termination (discount 0), the adapter a truncation; observations,
    # rewards and states agree throughout.
    dead = []

    def pick(i, mask):
        if not dead:
            if not mask[UP]:
                dead.append(i)
            return UP
        return int(np.flatnonzero(mask)[i % mask.sum()])

    steps = 26
    out = side_by_side("Snake-v1", 12, pick, steps, ref_limit=12)
    died = dead[0]
    assert died < 11  # the snake starts below the top row
    assert [i for i, (te, *_) in enumerate(out) if te] == [died]
    limits = [i for i in (died + 12, died + 24) if i < steps]
    assert [i for i, (_, tr, *_) in enumerate(out) if tr] == limits
    assert out[died + 12][3:] == (True, 0.0)  # jumanji's own limit: discount 0


class Plain(NamedTuple):
    x: jax.Array


class Masked(NamedTuple):
    x: jax.Array
    action_mask: jax.Array


class Stub:
    """Just enough of a jumanji env for :func:`family.action_layout`."""

    def __init__(self, action_spec, mask_shape=None):
        self.action_spec = action_spec
        self.mask_shape = mask_shape

    def reset(self, key):
        if self.mask_shape is None:
            return (), restart(Plain(jnp.zeros(3)))
        return (), restart(Masked(jnp.zeros(3), jnp.ones(self.mask_shape, bool)))


@pytest.mark.parametrize(
    "spec, mask_shape, kind, space",
    [
        (specs.DiscreteArray(4), (4,), "discrete", ("n", 4)),
        # Per agent (Cleaner, Connector, RobotWarehouse): one mask per part.
        (
            specs.MultiDiscreteArray(np.array([4, 4, 4])),
            (3, 4),
            "parts",
            ("nvec", (4,) * 3),
        ),
        # Over the joint actions (Tetris, Minesweeper, Sudoku): one Discrete.
        (specs.MultiDiscreteArray(np.array([4, 10])), (4, 10), "joint", ("n", 40)),
        # No mask (RubiksCube).
        (
            specs.MultiDiscreteArray(np.array([6, 1, 3])),
            None,
            "parts",
            ("nvec", (6, 1, 3)),
        ),
        # MultiCVRP: int16 node indices, the mask's width is the count.
        (
            specs.BoundedArray((2,), jnp.int16, 0, 21),
            (2, 21),
            "parts",
            ("nvec", (21, 21)),
        ),
        (
            specs.BoundedArray((2,), jnp.float32, -1.0, 1.0),
            None,
            "box",
            ("shape", (2,)),
        ),
    ],
)
def test_action_layouts(spec, mask_shape, kind, space):
    layout = family.action_layout(Stub(spec, mask_shape), "jumanji/Stub")
    assert layout.kind == kind and layout.masked == (mask_shape is not None)
    field, value = space
    assert getattr(layout.space(), field) == value


def test_actions_and_masks_reach_jumanji_in_its_layout():
    joint = family.ActionLayout("joint", (4, 10), jnp.int32, masked=True)
    np.testing.assert_array_equal(joint.to_jumanji(jnp.int32(23)), [2, 3])
    mask = jnp.zeros((4, 10), bool).at[2, 3].set(True)
    assert np.flatnonzero(joint.mask(mask)).tolist() == [23]
    # Per part, each part's mask in turn; a part with no legal action (an
    # agent that is done, in MMST) gets all its actions.
    parts = family.ActionLayout("parts", (3, 2), jnp.int16, masked=True)
    mask = jnp.array([[False, True, False], [False, False, False]])
    assert parts.mask(mask).tolist() == [False, True, False, True, True]
    assert parts.to_jumanji(jnp.array([2, 1], jnp.int32)).dtype == jnp.int16


def test_specs_and_time_limits_through_make_env():
    def spec_of(task, key, **kwargs):
        config = PPOConfig(
            env_name=f"jumanji/{task}",
            obs_key=key,
            policy_std=None,
            clip_actions=False,
            **kwargs,
        )
        return make_env(config)

    game = spec_of("Game2048-v1", "board").spec
    assert game.obs_shape == (4, 4) and game.obs_dtype == np.int32
    assert game.discrete and game.action_dim == 4 and game.action_mask
    assert game.max_episode_steps == family.DEFAULT_MAX_STEPS  # none of its own
    snake = spec_of("Snake-v1", "grid", max_episode_steps=20)
    assert snake.spec.obs_shape == (12, 12, 5) and snake.spec.max_episode_steps == 20
    env = snake.env.env  # under ObservationKey
    assert env.max_steps == 4000  # jumanji's own time_limit
    assert env.inner(snake.params).env.time_limit == 21  # one past ppo_jax's
    cleaner = spec_of("Cleaner-v0", "grid").spec  # 3 agents, 4 moves each
    assert cleaner.action_parts == (4, 4, 4) and cleaner.action_dim == 12
    assert cleaner.action_shape == (3,) and cleaner.action_mask
    assert cleaner.obs_shape == (10, 10) and cleaner.max_episode_steps == 100
    tetris = spec_of("Tetris-v0", "grid").spec  # rotation x column, joint mask
    assert tetris.action_parts == () and tetris.action_dim == 40
    assert tetris.action_shape == () and tetris.action_mask


def test_every_registered_task_is_documented():
    refused = {"Sokoban-v0", "SearchAndRescue-v0"}
    assert set(family.MAIN_KEYS) | refused == jumanji.registered_environments()
    assert family.__doc__ is not None
    for task in jumanji.registered_environments():
        assert f"``{task}``" in family.__doc__, task


@pytest.mark.parametrize(
    "task, backend, match",
    [
        ("Game2048-v0", None, "did you mean Game2048-v1"),
        ("CartPole-v1", None, "names jumanji registers such as"),
        ("Sokoban-v0", None, "a task that builds offline"),
        ("Game2048-v1", "gpu", "none for jumanji/Game2048-v1"),
    ],
)
def test_refusals_before_building_are_one_sentence(monkeypatch, task, backend, match):
    refused_before_building(monkeypatch, jumanji, family, task, backend, match)


@pytest.mark.parametrize(
    "spec, mask_shape, match",
    [
        # SearchAndRescue: (searchers, 2) accelerations.
        (specs.BoundedArray((2, 2), jnp.float32, -1.0, 1.0), None, "of shape"),
        (specs.MultiDiscreteArray(np.array([2, 2])), (2, 2), "per part or joint"),
        (specs.MultiDiscreteArray(np.array([4, 10])), (10, 4), "neither one per part"),
        (specs.MultiDiscreteArray(np.array([200, 100])), (200, 100), "joint actions"),
    ],
)
def test_actions_the_policy_cannot_serve_are_refused(spec, mask_shape, match):
    with pytest.raises(ConfigError, match=match) as error:
        family.action_layout(Stub(spec, mask_shape), "jumanji/Stub")
    assert str(error.value).count(". ") == 0


def test_an_obs_key_it_lacks_is_refused_with_its_keys():
    config = PPOConfig(env_name="jumanji/Game2048-v1", obs_key="grid", policy_std=None)
    with pytest.raises(ConfigError, match=r"obs_key='grid' .*keys .*\(board\)"):
        make_env(config)


def test_jit_and_vmap():
    env, params = family.make("Snake-v1", "jumanji/Snake-v1", None)
    params = params.replace(max_steps_in_episode=5)

    @jax.jit
    def run(key):
        keys = jax.random.split(key, 8)
        obs, state = jax.vmap(env.reset, (0, None))(keys, params)

        def body(state, key):
            out = jax.vmap(env.step, (0, 0, None, None))(
                jax.random.split(key, 8), state, jnp.int32(1), params
            )
            return out[1], out[2:5]

        return jax.lax.scan(body, state, jax.random.split(key, 10))

    state, (reward, terminated, truncated) = run(jax.random.key(0))
    assert reward.shape == (10, 8) and reward.dtype == jnp.float32
    assert state.steps.shape == (8,) and state.inner["body"].shape == (8, 12, 12)
    # Right, five times over: the wall or the limit ends every episode by then.
    assert np.asarray(terminated | truncated)[:5].any(axis=0).all()


def test_ppo_learns_game2048():
    # 2 seeds x 60 iterations of 16 envs x 128 steps (123k steps), the policy
    # masked to legal moves, reading the board of tile exponents. Random legal
    # moves score about 1050 (32 games: 1047 +- 412), the first iterations
    # here 900-1200; always the first legal move in a fixed order (down,
    # left, right, up) scores 2560. In the last 3 iterations 8 seeds tried
    # were at 2470-3810. Takes 15-26 s, compiling included (2 CPU cores
    # shared with other work).
    config = PPOConfig(
        env_name="jumanji/Game2048-v1",
        obs_key="board",
        policy_std=None,
        num_envs=16,
        rollout_length=128,
        total_timesteps=60 * 16 * 128,
        advantage="gae",
        gamma=0.99,
        update_epochs=4,
        num_minibatches=4,
        lr=1e-3,
        ent_coef=0.01,
    )
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = run_fast(jax.vmap(make_train(config)), keys)
    returns = np.asarray(metrics.mean_return)  # [seed, iteration]
    assert returns.shape == (2, 60) and np.isfinite(returns).all()
    first, last = returns[:, :3].mean(axis=1), returns[:, -3:].mean(axis=1)
    assert (last - first > 1000).all() and (last > 2000).all(), (first, last)
