"""Research scale from the command line: seeds and sweeps in one compile,
sharding over devices, and resume after a real SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ENV, TINY_ARGS, run_main

from ppo_jax.run.rundir import CHECKPOINT_FILE, RUN_FILES, read_rows
from ppo_jax.train import main as train_main

COMPARED = ("mean_return", "mean_length", "actor_loss", "critic_loss", "entropy")
SWEEP = ["--sweep", "lr=3e-4,1e-3", "--num-seeds", "2"]


def assert_rows_close(got, want, rtol=1e-4):
    assert [r["iteration"] for r in got] == [r["iteration"] for r in want]
    for g, w in zip(got, want, strict=True):
        for key in COMPARED:
            np.testing.assert_allclose(
                g[key], w[key], rtol=rtol, atol=1e-5, err_msg=key
            )


def rows_of_run(rows, run):
    return [r for r in rows if r["run"] == run]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sweep") / "run"
    proc = run_main(
        "ppo_jax.train", *TINY_ARGS, "--total-timesteps", "1000", *SWEEP,
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return run_dir, proc.stdout


def test_sweep_writes_labelled_rows_table_and_plot(sweep_run):
    run_dir, stdout = sweep_run
    rows = read_rows(run_dir)
    assert len(rows) == 5 * 4  # iterations x (2 lrs x 2 seeds)
    labels = {(r["run"], r["seed"], r["lr"]) for r in rows}
    assert labels == {(0, 0, 3e-4), (1, 1, 3e-4), (2, 0, 1e-3), (3, 1, 1e-3)}
    table = (run_dir / "sweep.md").read_text()
    assert "| lr | seeds | final return (mean ± std) |" in table
    assert len(table.strip().splitlines()) == 4 and "| 0.001 | 2 |" in table
    assert table.strip() in stdout
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    assert json.loads((run_dir / "run.json").read_text())["num_seeds"] == 2


def test_sweep_runs_equal_individual_runs(sweep_run, trained_run):
    # trained_run is the same tiny config alone: seed 0, lr 3e-4 = run 0.
    sweep_rows = read_rows(sweep_run[0])
    assert_rows_close(rows_of_run(sweep_rows, 0), read_rows(trained_run[0]))
    # Different settings really differ.
    assert (
        rows_of_run(sweep_rows, 0)[-1]["actor_loss"]
        != rows_of_run(sweep_rows, 2)[-1]["actor_loss"]
    )


def run_on_two_devices(*args):
    flags = f"{ENV.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = {**ENV, "XLA_FLAGS": flags.strip()}
    return subprocess.run(
        [sys.executable, "-m", "ppo_jax.train", *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def test_two_devices_give_the_same_results(tmp_path, sweep_run, trained_run):
    # Runs axis sharded over 2 devices.
    sweep_dir = tmp_path / "sweep2"
    proc = run_on_two_devices(
        *TINY_ARGS, "--total-timesteps", "1000", *SWEEP, "--run-dir", str(sweep_dir)
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 device(s)" in proc.stdout and "note:" not in proc.stdout
    got, want = read_rows(sweep_dir), read_rows(sweep_run[0])
    for run in range(4):
        assert_rows_close(rows_of_run(got, run), rows_of_run(want, run))
    # A single run: its 4 envs sharded over 2 devices.
    single_dir = tmp_path / "single2"
    proc = run_on_two_devices(
        *TINY_ARGS, "--total-timesteps", "1000", "--run-dir", str(single_dir)
    )
    assert proc.returncode == 0, proc.stderr
    assert_rows_close(read_rows(single_dir), read_rows(trained_run[0]))


# Slow enough per iteration (many epochs) that a kill lands mid-run.
RESUME_ARGS = [
    "--num-envs", "4", "--rollout-length", "50", "--max-episode-steps", "50",
    "--update-epochs", "40", "--save-freq", "2", "--total-timesteps", "6000",
]  # fmt: skip


def checkpoint_iteration(run_dir):
    from ppo_jax.analysis.evaluation import load_run

    return int(load_run(run_dir)[1].iteration)


# A recurrent run carries its networks' memory in the checkpoint as well;
# 37-step episodes run across the 50-step rollouts, so that the memory at a
# checkpoint (every 2 iterations, 100 steps) is never the restarted one.
GRU_ARGS = [
    "--network", "gru", "--hidden-sizes", "16", "--recurrent-size", "8",
    "--max-episode-steps", "37",
]  # fmt: skip


# The feedforward run adapts its learning rate from the KL: the rate, in the
# optimizer state, must resume as exactly as the parameters.
ADAPTIVE_ARGS = ["--lr-schedule", "adaptive_kl", "--lr", "1e-3"]


@pytest.mark.parametrize(
    "network_args", [ADAPTIVE_ARGS, GRU_ARGS], ids=["mlp-adaptive_kl", "gru"]
)
def test_killed_then_resumed_equals_uninterrupted(tmp_path, network_args):
    args = [*RESUME_ARGS, *network_args]
    whole = tmp_path / "whole"
    proc = run_main("ppo_jax.train", *args, "--run-dir", str(whole))
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "ppo_jax.train", *args, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        # Kill right after a chunk's rows appear: the child is then computing
        # the next chunk, not between its checkpoint and its metrics rows (a
        # kill there loses those rows by design, which resume reports).
        deadline, seen = time.time() + 120, 0
        while True:
            assert child.poll() is None, "finished before it could be killed"
            assert time.time() < deadline, "no checkpoint after iteration 0"
            metrics = killed / "metrics.csv"
            rows = len(read_rows(killed)) if metrics.exists() else 0
            if rows >= 4 and rows > seen:
                break
            seen = rows
            time.sleep(0.001)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    stopped_at = checkpoint_iteration(killed)
    assert 2 <= stopped_at < 30  # killed mid-run, after some checkpoint
    if network_args == GRU_ARGS:
        from ppo_jax.analysis.evaluation import load_run

        memory = load_run(killed)[1].envs.memory
        assert np.abs(memory.actor).min(axis=1).max() > 0  # a mid-episode carry

    proc = run_main("ppo_jax.train", "--resume", str(killed))
    assert proc.returncode == 0, proc.stderr
    assert f"resuming after iteration {stopped_at}" in proc.stdout
    assert checkpoint_iteration(killed) == 30

    # Same metrics, row for row (wall-clock seconds aside), and the same final
    # checkpoint, bit for bit.
    def without_seconds(rows):  # as text: NaN (no evaluation) equals NaN
        return repr([{k: v for k, v in r.items() if k != "seconds"} for r in rows])

    assert without_seconds(read_rows(killed)) == without_seconds(read_rows(whole))
    assert (killed / CHECKPOINT_FILE).read_bytes() == (
        whole / CHECKPOINT_FILE
    ).read_bytes()


def test_resume_checks_the_saved_config_before_compiling(tmp_path, capsys, trained_run):
    # config.json edited after the run: --resume refuses, as evaluate does,
    # and leaves the run's files as they were.
    run_dir = tmp_path / "edited"
    run_dir.mkdir()
    for path in trained_run[0].iterdir():
        (run_dir / path.name).write_bytes(path.read_bytes())
    config = json.loads((run_dir / "config.json").read_text())
    config["gamma"] = 0.5
    (run_dir / "config.json").write_text(json.dumps(config))

    def run_files():
        return {
            p.name: p.read_bytes() for p in run_dir.iterdir() if p.name in RUN_FILES
        }

    before = run_files()
    assert train_main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "gamma=0.99 but config.json says gamma=0.5" in err and err.count("\n") == 1
    assert run_files() == before


def test_resume_refuses_new_settings(tmp_path, capsys, trained_run):
    assert train_main(["--resume", str(trained_run[0]), "--lr", "0.1"]) == 2
    assert "--resume continues a run with its own settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sweep", "hidden_sizes=32,64"], "sweep='hidden_sizes'"),
        (["--sweep", "lr"], "FIELD=V1,V2"),
        (["--sweep", "lr=abc"], "FIELD=V1,V2"),
        (["--sweep", "lr=-1,1e-3"], "lr=-1.0"),
        (["--sweep", "gamma=0.9", "--sweep", "gamma=0.99"], "each field swept once"),
    ],
)
def test_bad_sweeps(argv, message, capsys, tmp_path):
    assert train_main([*argv, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_picks_the_requested_run(sweep_run, capsys):
    from ppo_jax.evaluate import main as evaluate_main

    summaries = []
    for run in ("0", "3"):
        assert evaluate_main([str(sweep_run[0]), "--run", run, "--episodes", "2"]) == 0
        summaries.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert summaries[0] != summaries[1]  # seed 0 / lr 3e-4 vs seed 1 / lr 1e-3
    assert evaluate_main([str(sweep_run[0]), "--run", "4"]) == 2
    assert "run=4 is not allowed: an index from 0 to 3" in capsys.readouterr().err


def test_xla_options_the_user_set_win_over_ppo_jaxs(monkeypatch):
    from ppo_jax.run.experiment import compiler_options

    table = {"cpu": {"xla_backend_optimization_level": 1, "xla_other": True}}
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert compiler_options(table, "cpu") == table["cpu"]
    assert compiler_options(table, "gpu") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert compiler_options(table, "cpu") == {"xla_other": True}
    monkeypatch.setenv(
        "XLA_FLAGS", "--xla_other=false --xla_backend_optimization_level=0"
    )
    assert compiler_options(table, "cpu") is None
