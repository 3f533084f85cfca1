"""MuJoCo Playground and brax families: the episode bookkeeping of StateEnv
(time limit = truncation, the env's done = termination, auto-reset keeping the
final observation, action repeat), the adapter on CartpoleBalance checked
against Playground's own step, refusals, and a short run that learns."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ENV
from flax import struct
from PIL import Image

from ppo_jax import PPOConfig
from ppo_jax.analysis.rendering import frame_stride
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import make_env, preset_config
from ppo_jax.envs.state_api import StateEnv

pytest.importorskip("mujoco_playground")


# ------------------------------------------------------------ a fake brax env
@struct.dataclass
class CounterState:
    obs: jax.Array  # [2]: (count, episode id)
    reward: jax.Array
    done: jax.Array
    info: dict


class CounterEnv:
    """Counts steps; reward = the action; done once the count reaches 5."""

    action_size = 1

    def reset(self, rng):
        start = jax.random.uniform(rng, (), minval=100.0, maxval=200.0)
        return CounterState(
            obs=jnp.stack([0.0, start]),
            reward=jnp.zeros(()),
            done=jnp.zeros(()),
            info={},
        )

    def step(self, state, action):
        count = state.obs[0] + 1
        return CounterState(
            obs=jnp.stack([count, state.obs[1]]),
            reward=action[0],
            done=(count >= 5).astype(jnp.float32),
            info={},
        )


def run_steps(env, params, n, action=1.0):
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    out = []
    for i in range(n):
        obs, state, reward, terminated, truncated, info = env.step(
            jax.random.fold_in(key, i), state, jnp.array([action]), params
        )
        out.append((obs, reward, terminated, truncated, info["final_observation"]))
    return out


def test_time_limit_is_truncation_and_the_final_observation_is_kept():
    env = StateEnv(CounterEnv(), max_steps_in_episode=3)
    steps = run_steps(env, env.default_params, 4)
    flags = [(bool(t), bool(u)) for _, _, t, u, _ in steps]
    assert flags == [(False, False), (False, False), (False, True), (False, False)]
    _, _, _, _, final = steps[2]
    assert float(final[0]) == 3.0  # the observation the episode ended on
    obs_after_reset = steps[2][0]
    assert float(obs_after_reset[0]) == 0.0 and float(obs_after_reset[1]) != final[1]
    assert float(steps[3][0][0]) == 1.0  # the new episode goes on


def test_the_envs_done_is_termination_not_truncation():
    env = StateEnv(CounterEnv(), max_steps_in_episode=100)
    steps = run_steps(env, env.default_params, 6)
    terminated = [bool(t) for _, _, t, _, _ in steps]
    truncated = [bool(u) for _, _, _, u, _ in steps]
    assert terminated == [False] * 4 + [True, False] and not any(truncated)
    assert float(steps[4][4][0]) == 5.0 and float(steps[4][0][0]) == 0.0


def test_a_terminal_state_that_is_also_at_the_limit_is_terminated():
    env = StateEnv(CounterEnv(), max_steps_in_episode=5)
    steps = run_steps(env, env.default_params, 5)
    assert (bool(steps[4][2]), bool(steps[4][3])) == (True, False)


def test_action_repeat_sums_rewards_and_stops_at_a_terminal_state():
    env = StateEnv(CounterEnv(), max_steps_in_episode=100, action_repeat=2)
    steps = run_steps(env, env.default_params, 3, action=0.5)
    # Agent steps 1, 2: counts 2, 4, reward 2 x 0.5. Step 3 reaches 5 after
    # one env step: the second repeat is not taken (reward 0.5, terminated).
    assert [float(r) for _, r, _, _, _ in steps] == [1.0, 1.0, 0.5]
    assert [float(f[0]) for *_, f in steps] == [2.0, 4.0, 5.0]
    assert bool(steps[2][2])


def test_under_jit_and_vmap():
    env = StateEnv(CounterEnv(), max_steps_in_episode=3)
    params = env.default_params
    keys = jax.random.split(jax.random.key(1), 8)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, state, reward, terminated, truncated, info = step(
        keys, state, jnp.ones((8, 1)), params
    )
    assert obs.shape == (8, 2) and reward.dtype == jnp.float32
    assert terminated.shape == truncated.shape == (8,)


# ------------------------------------------------------------ CartpoleBalance
@pytest.fixture(scope="module")
def cartpole():
    config = preset_config("tuned", env_name="playground/CartpoleBalance")
    return config, make_env(config)


def test_cartpole_balance_adapter_shapes(cartpole):
    config, setup = cartpole
    spec = setup.spec
    assert spec.obs_shape == (5,) and spec.obs_dtype == np.float32
    assert not spec.discrete and spec.action_dim == 1
    assert list(spec.action_low) == [-1.0] and list(spec.action_high) == [1.0]
    assert spec.max_episode_steps == 1000
    assert (config.num_envs, config.rollout_length, config.gamma) == (1, 2048, 0.99)


def test_auto_reset_keeps_the_final_observation_of_playgrounds_own_step(cartpole):
    _, setup = cartpole
    env, params = setup.env, setup.params.replace(max_steps_in_episode=2)
    action = jnp.array([0.7])

    @jax.jit  # one compile of MJX for the whole scenario (each takes seconds)
    def scenario():
        _, state = env.reset(jax.random.key(3), params)
        _, state, *_ = env.step(jax.random.key(4), state, action, params)
        own = env.env.step(state.inner, action)  # Playground's own step
        after_limit = env.step(jax.random.key(5), state, action, params)
        fresh = env.env.reset(jax.random.key(5))
        return own, after_limit, fresh

    own, (obs, state2, reward, terminated, truncated, info), fresh = scenario()
    assert bool(truncated) and not bool(terminated)
    np.testing.assert_array_equal(info["final_observation"], own.obs)
    assert float(reward) == pytest.approx(float(own.reward))
    np.testing.assert_array_equal(obs, fresh.obs)
    assert int(state2.steps) == 0


@pytest.mark.parametrize(
    "env_name, backend, match",
    [
        ("playground/CartpoleBalanc", None, "did you mean CartpoleBalance"),
        ("playground/Go1JoystickFlatTerrain", None, "downloads"),
        ("playground/CartpoleBalance", "cuda", "one of jax, warp"),
        ("brax/antt", None, "did you mean ant"),
        ("brax/ant", "jax", "one of generalized"),
        ("Pendulum-v1", "jax", "gymnax"),
    ],
)
def test_bad_names_and_backends_are_one_sentence(env_name, backend, match):
    with pytest.raises(ConfigError, match=match):
        make_env(PPOConfig(env_name=env_name, env_backend=backend))


def test_brax_inverted_pendulum_learns_from_the_command_line(
    tmp_path, capsys, monkeypatch
):
    # The command line end to end on a brax env: 3 seeds, 100-step episodes.
    from ppo_jax.evaluate import main as evaluate_main
    from ppo_jax.run.rundir import read_rows
    from ppo_jax.train import main as train_main

    # The command's own XLA options for its chunk, not the suite's quickest
    # code generation (conftest): brax's physics at LLVM -O0 ran 6.5x slower
    # (7.8k against 50k steps/s), more than the quicker compile saves.
    monkeypatch.setenv("XLA_FLAGS", "")
    run_dir = tmp_path / "run"
    code = train_main(
        [
            "--env", "brax/inverted_pendulum", "--preset", "tuned",
            "--max-episode-steps", "100", "--num-envs", "32", "--rollout-length", "64",
            "--total-timesteps", str(32 * 64 * 30), "--gamma", "0.99",
            "--update-epochs", "4", "--num-minibatches", "4", "--num-seeds", "3",
            "--run-dir", str(run_dir), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in ("metrics.csv", "learning_curve.png", "checkpoint.msgpack"):
        assert (run_dir / name).stat().st_size > 0
    rows = read_rows(run_dir)
    first = np.mean([r["mean_return"] for r in rows if r["iteration"] <= 2])
    last = np.mean([r["mean_return"] for r in rows if r["iteration"] >= 28])
    assert first < 20 and last > 80, (first, last)  # random: ~5 steps upright
    capsys.readouterr()
    gif = tmp_path / "episode.gif"
    argv = [str(run_dir), "--episodes", "4", "--run", "2", "--gif", str(gif)]
    assert evaluate_main(argv) == 0
    *_, gif_line, summary = capsys.readouterr().out.strip().splitlines()
    assert float(summary.split()[0].split("=")[1]) > 80, summary
    # The GIF: MuJoCo's frames of one deterministic episode, one per 40 ms step
    # of brax's inverted pendulum, in real time.
    assert gif_line.startswith(f"gif: {gif} (MuJoCo episode, length=100"), gif_line
    with Image.open(gif) as image:
        assert image.n_frames == 100 and image.size == (320, 240)
        assert image.info["duration"] == 40
        frames = []
        for i in (0, 50):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB"), np.float32))
    assert frames[0].std() > 10  # a scene, not a blank buffer
    assert np.abs(frames[0] - frames[1]).mean() > 0  # the pendulum moved

    # Where MuJoCo cannot draw, one sentence before loading, no GIF written.
    env = {**ENV, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    bad_gif = tmp_path / "no.gif"
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_jax.evaluate", str(run_dir), "--gif", str(bad_gif)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "needs OpenGL through MUJOCO_GL=egl" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not bad_gif.exists()


@pytest.mark.parametrize(
    "step_seconds, stride, ms",
    [(0.01, 4, 40), (0.04, 1, 40), (0.05, 1, 50), (0.015, 3, 45), (0.001, 40, 40)],
)
def test_gif_frames_play_in_real_time_at_most_25_per_second(step_seconds, stride, ms):
    assert frame_stride(step_seconds) == (stride, ms)
