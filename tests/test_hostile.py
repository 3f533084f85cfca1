"""Hostile input: every refusal is one line on stderr, exit code 2, no
traceback, before compiling, and nothing that was good before is lost.

Classes: values at and past every field's limits (generated from the schema),
limits across fields and of memory, odd but plausible input, damaged files of
every kind in a run directory (for evaluate and for --resume), damaged
metrics that --resume repairs, signals at several moments, two processes on
one directory, a full disk (a small tmpfs, where one can be mounted), and
presets on discrete environments.
"""

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ENV, TINY_ARGS, run_main
from flax import serialization

from ppo_jax import PPOConfig
from ppo_jax.config.schema import INT32_MAX, field_kinds
from ppo_jax.envs import make_env, preset_config
from ppo_jax.evaluate import main as evaluate_main
from ppo_jax.run.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    RUN_FILE,
    RUN_FILES,
    read_rows,
)
from ppo_jax.train import main as train_main

# ------------------------------------------------------------------ helpers


def one_line_refusal(capsys, command, argv, code=2) -> str:
    """Run a CLI main in-process; assert the exit code and one error line."""
    try:
        got = command(argv)
    except SystemExit as e:  # argparse's own errors
        got = e.code
    err = capsys.readouterr().err
    assert got == code, (got, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def limit_cases():
    """Values at and past each field's limits, from its declaration."""
    for kind in field_kinds(PPOConfig):
        flag = kind.flag
        if kind.base is int:
            low = 0 if kind.low is None else int(kind.low)
            high = INT32_MAX if math.isinf(kind.high) else int(kind.high)
            yield [flag, str(low - 1)]
            yield [flag, str(high + 1)]
        elif kind.base is float:
            yield [flag, "nan"]
            yield [flag, "inf"]
            if kind.low is not None:
                yield [flag, str(kind.low if kind.low_open else kind.low - 1)]
            if not math.isinf(kind.high):
                yield [flag, str(kind.high + 0.5)]
        elif kind.choices:
            yield [flag, "bogus"]
        elif kind.base is tuple:
            yield [flag, str((0 if kind.low is None else int(kind.low)) - 1)]
            yield [flag, "64,abc"]
            yield [flag, str(INT32_MAX + 1)]
            yield [flag, ""]
        elif kind.base is str:
            yield [flag, ""]


LIMITS = list(limit_cases())

ODD_INPUT = [
    (["--num-envs", "1000000000"], "fits in int32"),
    (["--total-timesteps", "99999999999999999999"], "total_timesteps="),
    (["--total-timesteps", "2147483647"], "the step counter is int32"),
    (["--num-envs", "10000000"], "of memory"),
    (["--hidden-sizes", "100000,100000"], "of memory"),
    (["--hidden-sizes", "99999999999"], "hidden_sizes="),
    (["--hidden-sizes", "abc"], "invalid comma-separated int value"),
    (["--seed", str(2**64)], "seed="),
    (["--seed", str(2**32 - 1), "--num-seeds", "2"], "num_seeds=2"),
    (["--num-minibatches", "7"], "divisor of the batch size"),
    (["--min-std", "0.1"], "min_std=0.1 is not allowed: 0 with policy_std=fixed"),
    (
        ["--env", "CartPole-v1", "--policy-std", "none", "--bounded-mean"],
        "bounded_mean=True is not allowed: false for CartPole-v1, whose actions are "
        "discrete",
    ),
    (
        ["--env", "CartPole-v1", "--policy-std", "none", "--min-std", "0.1"],
        "whose actions are discrete",
    ),
    (["--run-dir", ""], "empty path"),
    (["--resume", ""], "empty path"),
    (["--env", "MNISTBandit-bsuite"], "downloads MNIST"),
    (["--env", "mujoco/Ant-v5"], "FAMILY/NAME"),
    (["--env", "os:getcwd"], "gymnax 1.x contract"),
    (["--network", "os:path"], "a callable factory"),
    (["--sweep", "lr=nan"], "lr=nan"),
    (["--sweep", "num_envs=4,8"], "sweep='num_envs'"),
    (["--anneal-lr=yes"], "ignored explicit argument"),
    (["--no-such-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv", LIMITS, ids=" ".join)
def test_values_past_every_limit(argv, capsys, tmp_path):
    run_dir = tmp_path / "r"
    one_line_refusal(capsys, train_main, [*argv, "--run-dir", str(run_dir)])
    assert not run_dir.exists()


@pytest.mark.parametrize("argv,message", ODD_INPUT, ids=lambda x: str(x))
def test_odd_input(argv, message, capsys, tmp_path):
    run_dir = tmp_path / "r"
    args = argv if "--run-dir" in argv or "--resume" in argv else [
        *argv, "--run-dir", str(run_dir)
    ]  # fmt: skip
    line = one_line_refusal(capsys, train_main, args)
    assert message in line, line
    assert not run_dir.exists()


def test_limits_cover_every_numeric_field():
    numeric = [k for k in field_kinds(PPOConfig) if k.base in (int, float, tuple)]
    flags = {argv[0] for argv in LIMITS}
    assert flags >= {k.flag for k in numeric}
    assert len(LIMITS) + len(ODD_INPUT) >= 60


# ------------------------------------------------------- damaged run files


def _json(name, value):
    def damage(run_dir):
        (run_dir / name).write_text(json.dumps(value))

    return damage


def _edit_config(field, value):
    def damage(run_dir):
        config = json.loads((run_dir / CONFIG_FILE).read_text())
        config[field] = value
        (run_dir / CONFIG_FILE).write_text(json.dumps(config))

    return damage


def _drop_config_field(run_dir):
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    del config["num_envs"]
    (run_dir / CONFIG_FILE).write_text(json.dumps(config))


def _bytes(name, data):
    def damage(run_dir):
        (run_dir / name).write_bytes(data)

    return damage


def _truncate(name):
    def damage(run_dir):
        data = (run_dir / name).read_bytes()
        (run_dir / name).write_bytes(data[: len(data) // 2])

    return damage


def _delete(name):
    def damage(run_dir):
        (run_dir / name).unlink()

    return damage


def _checkpoint_format(run_dir):
    path = run_dir / CHECKPOINT_FILE
    payload = serialization.msgpack_restore(path.read_bytes())
    payload["format"] = 2
    path.write_bytes(serialization.msgpack_serialize(payload))


DAMAGED = {
    "config is a list": (_json(CONFIG_FILE, [1, 2]), "not a list"),
    "config is empty": (_json(CONFIG_FILE, {}), "it lacks"),
    "config lacks a field": (_drop_config_field, "it lacks num_envs"),
    "config bad value": (_edit_config("num_envs", -5), "num_envs=-5"),
    "config unknown field": (_edit_config("learning_rate", 1), "not a PPOConfig"),
    "config wrong type": (_edit_config("hidden_sizes", "big"), "hidden_sizes="),
    "config not json": (_bytes(CONFIG_FILE, b"{not json"), "not a valid"),
    "config binary": (_bytes(CONFIG_FILE, b"\x00\xff" * 50), "not a valid"),
    "config deleted": (_delete(CONFIG_FILE), "not a ppo_jax run directory"),
    "config other run": (_edit_config("gamma", 0.5), "the files come from"),
    "config other env": (
        _edit_config("env_name", "MountainCarContinuous-v0"),
        "does not match",
    ),
    "run.json zero seeds": (_json(RUN_FILE, {"num_seeds": 0}), "num_seeds=0"),
    "run.json a list": (_json(RUN_FILE, [1]), "not a valid run file"),
    "run.json not json": (_bytes(RUN_FILE, b"]["), "not a valid run file"),
    "run.json bad sweep": (
        _json(RUN_FILE, {"num_seeds": 1, "sweep": {"num_envs": [4]}}),
        "sweep='num_envs'",
    ),
    "run.json more runs": (_json(RUN_FILE, {"num_seeds": 3}), "does not match"),
    "checkpoint truncated": (_truncate(CHECKPOINT_FILE), "unreadable"),
    "checkpoint garbage": (_bytes(CHECKPOINT_FILE, b"junk" * 100), "unreadable"),
    "checkpoint empty": (_bytes(CHECKPOINT_FILE, b""), "unreadable"),
    "checkpoint format": (_checkpoint_format, "checkpoint format 2"),
    "checkpoint deleted": (_delete(CHECKPOINT_FILE), "saved no checkpoint"),
}


def damaged_copy(trained_run, tmp_path, damage):
    run_dir = tmp_path / "damaged"
    shutil.copytree(trained_run[0], run_dir)
    (run_dir / RUN_FILE).write_text(json.dumps({"num_seeds": 1, "sweep": {}}))
    damage(run_dir)
    return run_dir


def run_files(run_dir):
    return {
        p.name: p.read_bytes() for p in Path(run_dir).iterdir() if p.name in RUN_FILES
    }


@pytest.mark.parametrize("case", DAMAGED)
def test_evaluate_refuses_damaged_files(case, trained_run, tmp_path, capsys):
    damage, message = DAMAGED[case]
    run_dir = damaged_copy(trained_run, tmp_path, damage)
    line = one_line_refusal(capsys, evaluate_main, [str(run_dir), "--episodes", "1"])
    assert message in line, line


@pytest.mark.parametrize("case", DAMAGED)
def test_resume_refuses_damaged_files_and_keeps_them(
    case, trained_run, tmp_path, capsys
):
    damage, message = DAMAGED[case]
    run_dir = damaged_copy(trained_run, tmp_path, damage)
    before = run_files(run_dir)
    line = one_line_refusal(capsys, train_main, ["--resume", str(run_dir)])
    assert message in line, line
    assert run_files(run_dir) == before


@pytest.mark.parametrize(
    "damage",
    [
        _delete(METRICS_FILE),
        _truncate(METRICS_FILE),
        lambda d: (d / METRICS_FILE).write_bytes(
            (d / METRICS_FILE).read_bytes() + b"\x00" * 300
        ),
    ],
    ids=["deleted", "cut", "nul bytes"],
)
def test_resume_repairs_damaged_metrics(damage, trained_run, tmp_path):
    run_dir = damaged_copy(trained_run, tmp_path, damage)
    kept = read_rows(run_dir)
    proc = run_main("ppo_jax.train", "--resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    assert ("note: metrics.csv held" in proc.stdout) == (len(kept) < 5)
    rows = read_rows(run_dir)
    # The consistent beginning, nothing invented (as text: NaN equals NaN).
    assert repr(rows) == repr(kept)
    assert (run_dir / METRICS_FILE).read_bytes().count(b"\x00") == 0


def test_evaluate_refuses_a_run_dir_that_is_a_file(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    line = one_line_refusal(capsys, evaluate_main, [str(a_file)])
    assert "is not a directory" in line


# ------------------------------------------------------------------ signals


def start_training(run_dir, *extra):
    args = [*TINY_ARGS, "--total-timesteps", "100000000", "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "ppo_jax.train", *args, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip


def wait_for_line(proc, text, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        assert line or proc.poll() is None, f"ended before {text!r}"
    raise AssertionError(f"no {text!r} within {timeout} s")


def finish(proc, timeout=120):
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_signal_while_compiling_leaves_a_resumable_run(sig, tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir)
    wait_for_line(proc, "compiling")
    proc.send_signal(sig)
    code, err = finish(proc)
    assert code == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert (run_dir / CHECKPOINT_FILE).exists()  # iteration 0 at least
    from ppo_jax.analysis.evaluation import load_run

    assert int(load_run(run_dir)[1].iteration) % 2 == 0  # a chunk boundary


def test_signal_while_importing_is_one_line(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir)
    time.sleep(0.5)  # python is up, jax is being imported
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_two_ctrl_c_abort_with_one_line_and_a_loadable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir)
    wait_for_line(proc, "avg episodic return")  # training: past the first chunk
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    # The second Ctrl-C may come after the first one's stop was reported: at
    # most one more line, never a traceback.
    assert 1 <= len(err.strip().splitlines()) <= 2 and "Traceback" not in err, err
    from ppo_jax.analysis.evaluation import load_run

    iteration = int(load_run(run_dir)[1].iteration)
    assert len(read_rows(run_dir)) == iteration  # written together
    assert not list(run_dir.glob("*.tmp"))


def test_two_processes_on_one_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir)
    try:
        wait_for_line(proc, "compiling")
        for argv in (
            [*TINY_ARGS, "--run-dir", str(run_dir), "--overwrite"],
            ["--resume", str(run_dir)],
        ):
            line = one_line_refusal(capsys, train_main, argv)
            assert "in use by another ppo_jax process" in line, line
    finally:
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc)
    assert code == 130, err  # the first run was not disturbed


# --------------------------------------------------------------- full disk


@pytest.fixture
def small_tmpfs(tmp_path):
    """A mount point for a tmpfs of a chosen size (skipped where not allowed)."""
    mounts = []

    def mount(size_bytes):
        point = tmp_path / f"tmpfs{len(mounts)}"
        point.mkdir()
        size = f"{math.ceil(size_bytes / 4096) * 4}k"
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
        )
        if proc.returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


def test_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(
    small_tmpfs, tmp_path
):
    # Room for one checkpoint, not for the next beside it (writes are atomic:
    # the new file is complete before the old one is replaced).
    args = ["--hidden-sizes", "128,128"]
    probe = tmp_path / "probe"
    proc = run_main(
        "ppo_jax.train", *TINY_ARGS, *args, "--total-timesteps", "200",
        "--run-dir", str(probe),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    size = (probe / CHECKPOINT_FILE).stat().st_size
    run_dir = small_tmpfs(1.5 * size + 64 * 1024) / "run"
    proc = run_main(
        "ppo_jax.train", *TINY_ARGS, *args, "--total-timesteps", "2000",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left" in lines[0], proc.stderr
    from ppo_jax.analysis.evaluation import load_run

    iteration = int(load_run(run_dir)[1].iteration)
    assert len(read_rows(run_dir)) == iteration  # metrics match the checkpoint
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ overwrite


def test_overwrite_removes_what_the_previous_run_wrote(trained_run, tmp_path):
    run_dir = tmp_path / "again"
    shutil.copytree(trained_run[0], run_dir)
    (run_dir / "sweep.md").write_text("| lr | ...")
    (run_dir / "sweep.csv").write_text("lr,seeds\n")
    (run_dir / "notes.txt").write_text("mine")  # not the run's: kept
    proc = run_main(
        "ppo_jax.train", *TINY_ARGS, "--total-timesteps", "200",
        "--run-dir", str(run_dir), "--overwrite",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (run_dir / "sweep.md").exists() and not (run_dir / "sweep.csv").exists()
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert len(read_rows(run_dir)) == 1


# ------------------------------------------------------------------ presets

DISCRETE_WITHOUT_OVERRIDES = [
    "MountainCar-v0", "Catch-bsuite", "DeepSea-bsuite", "MetaMaze-misc",
    "FourRooms-misc", "SpaceInvaders-MinAtar", "Asterix-MinAtar",
]  # fmt: skip


@pytest.mark.parametrize("env_name", DISCRETE_WITHOUT_OVERRIDES)
def test_tuned_preset_picks_a_categorical_policy_for_discrete_envs(env_name):
    config = preset_config("tuned", env_name=env_name)
    assert config.policy_std is None and config.clip_actions is False
    assert make_env(config.validate()).spec.discrete  # accepted, not refused
    # A flag the user gives still wins (and is refused if it cannot apply).
    assert preset_config("tuned", env_name=env_name, policy_std="learned").policy_std


def test_tuned_preset_keeps_its_gaussian_on_continuous_envs():
    assert preset_config("tuned", env_name="Pendulum-v1").policy_std == "learned"
    assert preset_config("tutorial", env_name="CartPole-v1").policy_std == "fixed"


# ------------------------------------------------------------------ evaluate


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--episodes", "0"], "not an integer >= 1"),
        (["--seed", str(2**70)], "from 0 to 2**32 - 1"),
        (["--seed", "-1"], "from 0 to 2**32 - 1"),
        (["--run", "-1"], "run=-1 is not allowed"),
        (["--backend", "mujoco"], "invalid choice"),
    ],
)
def test_evaluate_refuses_bad_flags(argv, message, trained_run, capsys):
    line = one_line_refusal(capsys, evaluate_main, [str(trained_run[0]), *argv])
    assert message in line, line


def test_evaluate_many_episodes_in_bounded_batches(trained_run):
    from ppo_jax.analysis.evaluation import EPISODE_BATCH, evaluate_run, load_run

    pipeline, runner = load_run(trained_run[0])
    returns, lengths = evaluate_run(pipeline, runner, EPISODE_BATCH + 5, seed=3)
    assert returns.shape == lengths.shape == (EPISODE_BATCH + 5,)
    assert (lengths == 50).all()
    # The first batch is what one batch's worth of episodes with that seed
    # gives alone; the next batch draws other episodes.
    one_batch, _ = evaluate_run(pipeline, runner, EPISODE_BATCH, seed=3)
    np.testing.assert_array_equal(returns[:EPISODE_BATCH], one_batch)
    assert not np.isin(returns[EPISODE_BATCH:], one_batch).all()


def test_obs_key_on_array_observations_is_refused(capsys, tmp_path):
    line = one_line_refusal(
        capsys, train_main, ["--obs-key", "state", "--run-dir", str(tmp_path / "r")]
    )
    assert "obs_key='state' is not allowed: none for Pendulum-v1" in line
