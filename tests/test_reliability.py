"""Reliability: atomic checkpoints under SIGKILL, the NaN guard, bad files,
the gymnasium backend and GIFs."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import ENV, TINY_ARGS, run_main

from ppo_jax import PPOConfig
from ppo_jax.evaluate import main as evaluate_main
from ppo_jax.run.rundir import CHECKPOINT_FILE, CONFIG_FILE
from ppo_jax.train import main as train_main

gymnasium = pytest.importorskip("gymnasium")


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    # A writer saves ~40 MB checkpoints (wide networks) in a loop; it is killed
    # at an arbitrary moment, most likely mid-write. A non-atomic write would
    # leave a truncated file that fails to load.
    code = textwrap.dedent(
        f"""
        import jax
        from ppo_jax import PPOConfig, build_pipeline
        from ppo_jax.run.rundir import save_checkpoint, save_config
        config = PPOConfig(hidden_sizes=(1024, 1024), num_envs=2, rollout_length=8)
        pipeline = build_pipeline(config)
        runner = jax.jit(pipeline.init)(jax.random.key(0), config.hyperparams())
        save_config({str(tmp_path)!r}, config)
        i = 0
        while True:
            save_checkpoint({str(tmp_path)!r}, config, runner.replace(iteration=i))
            print(i, flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stdout.readline().strip() == "0"  # one complete checkpoint
        time.sleep(0.37)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    from ppo_jax.analysis.evaluation import load_run

    _, runner = load_run(tmp_path)
    assert int(runner.iteration) >= 0
    assert (tmp_path / CHECKPOINT_FILE).stat().st_size > 10_000_000


def test_absurd_learning_rate_stops_with_a_message_and_a_good_checkpoint(tmp_path):
    run_dir = tmp_path / "nan"
    proc = run_main(
        "ppo_jax.train", *TINY_ARGS, "--total-timesteps", "2000", "--lr", "1e30",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "non-finite loss or parameters at iteration" in proc.stderr
    assert "Traceback" not in proc.stderr
    match = next(
        line for line in proc.stderr.splitlines() if "checkpoint of iteration" in line
    )
    kept = int(match.split("checkpoint of iteration ")[1].split()[0])
    from ppo_jax.analysis.evaluation import load_run

    _, runner = load_run(run_dir)
    assert int(runner.iteration) == kept
    leaves = [np.asarray(x) for x in __import__("jax").tree.leaves(runner.agent)]
    assert all(np.isfinite(x).all() for x in leaves)
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == kept
    evaluate = run_main("ppo_jax.evaluate", str(run_dir), "--episodes", "2")
    assert evaluate.returncode == 0 and "mean_return=" in evaluate.stdout


@pytest.fixture(scope="module")
def pendulum_run(trained_run):
    return trained_run[0]


def copy_run(src, dst):
    dst.mkdir()
    for name in (CONFIG_FILE, CHECKPOINT_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_bad_files_are_clear_errors(pendulum_run, tmp_path, capsys):
    cases = []
    # 1. config.json only, no checkpoint
    only_config = tmp_path / "only_config"
    only_config.mkdir()
    (only_config / CONFIG_FILE).write_text((pendulum_run / CONFIG_FILE).read_text())
    cases.append((only_config, "missing: the run saved no checkpoint"))
    # 2. truncated checkpoint
    truncated = copy_run(pendulum_run, tmp_path / "truncated")
    data = (truncated / CHECKPOINT_FILE).read_bytes()
    (truncated / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])
    cases.append((truncated, "unreadable"))
    # 3. garbage checkpoint
    garbage = copy_run(pendulum_run, tmp_path / "garbage")
    (garbage / CHECKPOINT_FILE).write_bytes(b"not a checkpoint" * 100)
    cases.append((garbage, "unreadable"))
    # 4. config.json of another architecture
    other_arch = copy_run(pendulum_run, tmp_path / "other_arch")
    config = json.loads((other_arch / CONFIG_FILE).read_text())
    config["hidden_sizes"] = [32, 32]
    (other_arch / CONFIG_FILE).write_text(json.dumps(config))
    cases.append((other_arch, "does not match"))
    # 5. config.json of another env (same shapes: MountainCarContinuous has 2
    #    observations, Pendulum 3 -> a shape mismatch is reported)
    other_env = copy_run(pendulum_run, tmp_path / "other_env")
    config = json.loads((other_env / CONFIG_FILE).read_text())
    config["env_name"] = "MountainCarContinuous-v0"
    (other_env / CONFIG_FILE).write_text(json.dumps(config))
    cases.append((other_env, "does not match"))
    # 6. same shapes, different field: gamma
    other_gamma = copy_run(pendulum_run, tmp_path / "other_gamma")
    config = json.loads((other_gamma / CONFIG_FILE).read_text())
    config["gamma"] = 0.5
    (other_gamma / CONFIG_FILE).write_text(json.dumps(config))
    cases.append((other_gamma, "gamma=0.99 but config.json says gamma=0.5"))
    # 7. broken config.json
    broken = copy_run(pendulum_run, tmp_path / "broken_config")
    (broken / CONFIG_FILE).write_text("{not json")
    cases.append((broken, "not a valid ppo_jax config"))
    # 8. not a run directory
    cases.append((tmp_path, "not a ppo_jax run directory"))
    for run_dir, message in cases:
        assert evaluate_main([str(run_dir), "--episodes", "1"]) == 2, run_dir
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert message in err, (run_dir, err)


def test_run_dir_that_cannot_be_used(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert train_main([*TINY_ARGS, "--run-dir", str(a_file)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert train_main([*TINY_ARGS, "--run-dir", str(a_file / "sub")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_gymnasium_backend_refuses_envs_it_lacks(tmp_path, capsys):
    run_dir = tmp_path / "catch"
    run_dir.mkdir()
    config = PPOConfig.from_preset("tuned", env_name="Breakout-MinAtar")
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict()))
    assert evaluate_main([str(run_dir), "--backend", "gymnasium"]) == 2
    err = capsys.readouterr().err
    assert "backend='gymnasium'" in err and "Pendulum-v1" in err


def test_gymnasium_backend_refuses_sampled_actions(pendulum_run, tmp_path, capsys):
    # The run's config alone decides (its eval_actions), before anything loads.
    run_dir = tmp_path / "sampling"
    run_dir.mkdir()
    config = json.loads((pendulum_run / CONFIG_FILE).read_text())
    (run_dir / CONFIG_FILE).write_text(json.dumps({**config, "eval_actions": "sample"}))
    for argv, where in [([], run_dir), (["--actions", "sample"], pendulum_run)]:
        args = [str(where), "--backend", "gymnasium", *argv]
        assert evaluate_main(args) == 2
        err = capsys.readouterr().err
        assert "deterministic policy only: --actions mode" in err, err
        assert len(err.strip().splitlines()) == 1


def test_gymnasium_backend_prints_the_same_lines(pendulum_run):
    proc = run_main(
        "ppo_jax.evaluate",
        str(pendulum_run),
        "--episodes",
        "3",
        "--backend",
        "gymnasium",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [
        "episode 1",
        "episode 2",
        "episode 3",
    ]
    assert all("length=50 " in line for line in lines[:3])  # the run's time limit
    assert lines[-1].startswith("mean_return=") and lines[-1].endswith("episodes=3")


def test_pendulum_dynamics_agree_between_gymnax_and_gymnasium():
    # Same state, same actions -> same observations and rewards, step by step.
    import gymnax
    import jax
    import jax.numpy as jnp

    env, params = gymnax.make("Pendulum-v1")
    ref = gymnasium.make("Pendulum-v1").unwrapped
    ref.reset(seed=0)
    _, state = env.reset(jax.random.key(0), params)
    ref.state = np.array([float(state.theta), float(state.theta_dot)])
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for t in range(100):
        action = rng.uniform(-3, 3, size=1).astype(np.float32)
        obs, state, reward, *_ = step(
            jax.random.key(t), state, jnp.asarray(action), params
        )
        ref_obs, ref_reward, *_ = ref.step(action)
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-4, atol=1e-4)
        assert float(reward) == pytest.approx(float(ref_reward), rel=1e-4, abs=1e-4)


def test_gif_of_one_episode(pendulum_run, tmp_path):
    gif = tmp_path / "episode.gif"
    proc = run_main(
        "ppo_jax.evaluate", str(pendulum_run), "--episodes", "1", "--gif", str(gif)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"gif: {gif}" in proc.stdout
    from PIL import Image

    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 51  # 50 steps + start
        assert image.size[0] >= 100
