"""One run over two processes (jax.distributed, CPU collectives through gloo):
the same numbers as one process, and only process 0 writes the run directory.

Each process has its own CPU device; the 4 seeds are sharded 2 + 2 across the
processes, as they would be across two hosts.
"""

import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ENV, run_main

from ppo_jax.analysis.evaluation import load_run
from ppo_jax.run.rundir import read_rows

ARGS = [
    "--num-envs", "4", "--rollout-length", "50", "--max-episode-steps", "50",
    "--total-timesteps", "800", "--hidden-sizes", "16,16", "--save-freq", "2",
    "--num-seeds", "4", "--quiet",
]  # fmt: skip


# 40 iterations, a checkpoint after each: long enough to kill a process
# mid-run; the module's uninterrupted runs are this long too, so that the
# killed-and-resumed pair is compared with them.
LONG = ["--total-timesteps", str(200 * 40), "--save-freq", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# One CPU device per process, whatever device count the caller's XLA_FLAGS
# ask for (conftest's other flags kept).
ONE_DEVICE = {
    **ENV,
    "XLA_FLAGS": " ".join(
        flag
        for flag in ENV.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    ),
}


def train(cwd, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "ppo_jax.train", *ARGS, "--run-dir", "run", *extra],
        cwd=cwd, env=ONE_DEVICE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(one, two, first, second)``: the directories of a 1-process run and of
    a 2-process run's processes 0 and 1 (each started in its own folder)."""
    one, first, second = (tmp_path_factory.mktemp(n) for n in ("one", "p0", "p1"))
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [
        train(cwd, *LONG, "--coordinator", coordinator, "--num-processes", "2",
              "--process-id", str(i))
        for i, cwd in enumerate((first, second))
    ]  # fmt: skip
    outs = [finish(p) for p in procs]
    # The 1-process run in this process: the same program, without a
    # subprocess's imports.
    proc = run_main("ppo_jax.train", *ARGS, *LONG, "--run-dir", str(one / "run"))
    assert proc.returncode == 0, proc.stderr
    return one, first, second, outs


def test_two_processes_equal_one_up_to_rounding(runs):
    one, first, _, outs = runs
    assert "4 runs, 2 device(s)" in outs[0]  # one mesh over both processes
    single, double = read_rows(one / "run"), read_rows(first / "run")
    assert len(single) == len(double) == 40 * 4  # 40 iterations x 4 seeds
    for a, b in zip(single, double, strict=True):
        assert (a["iteration"], a["run"]) == (b["iteration"], b["run"])
        for field in ("mean_return", "actor_loss", "critic_loss", "entropy"):
            np.testing.assert_allclose(b[field], a[field], rtol=1e-4, atol=1e-5)
    # The checkpoint process 0 wrote holds every run (gathered from both).
    for run in range(4):
        (_, mine), (_, theirs) = (load_run(d / "run", run) for d in (first, one))
        leaves = [jax.tree.leaves(r.agent) for r in (mine, theirs)]
        for x, y in zip(*leaves, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_only_process_zero_writes_the_run_directory(runs):
    _, first, second, outs = runs
    names = {p.name for p in (first / "run").iterdir()}
    assert {"metrics.csv", "checkpoint.msgpack", "config.json"} <= names
    assert not (second / "run").exists()  # process 1 wrote nothing at all
    assert outs[1] == ""  # nor printed
    assert "final:" in outs[0]


def test_process_flags_without_a_coordinator_are_refused(tmp_path):
    proc = train(tmp_path, "--num-processes", "2")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip() == "error: --num-processes and --process-id need --coordinator"
    assert not (tmp_path / "run").exists()


def _refusal(*args, env=ONE_DEVICE):
    proc = subprocess.run(
        [sys.executable, "-m", "ppo_jax.train", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_a_port_out_of_range_is_one_sentence():
    line = _refusal("--coordinator", "127.0.0.1:99999", "--num-processes", "2")
    assert "a port from 1 to 65535" in line


def test_a_coordinator_that_never_comes_is_one_sentence_after_the_timeout(tmp_path):
    # Before: jax retried, then aborted the process (SIGABRT) with a native
    # stack trace after its 300 s. Now a stated timeout, then one sentence.
    env = {**ONE_DEVICE, "PPO_JAX_COORDINATOR_TIMEOUT": "2"}
    line = _refusal(
        "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2",
        "--process-id", "1", "--run-dir", str(tmp_path / "run"), env=env,
    )  # fmt: skip
    assert "nothing answered there within 2 s" in line
    assert not (tmp_path / "run").exists()


def test_a_coordinator_port_in_use_is_one_sentence():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refusal(
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
            "--process-id", "0",
        )  # fmt: skip
    assert f"({port} is in use on this machine)" in line


def test_a_bad_coordinator_timeout_is_one_sentence():
    env = {**ONE_DEVICE, "PPO_JAX_COORDINATOR_TIMEOUT": "soon"}
    line = _refusal(
        "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2",
        "--process-id", "1", env=env,
    )  # fmt: skip
    assert "PPO_JAX_COORDINATOR_TIMEOUT='soon'" in line


def test_a_killed_peer_stops_the_other_in_one_sentence_and_both_resume(tmp_path, runs):
    # Process 1 is killed mid-run: process 0 notices at once (not after JAX's
    # heartbeat timeout and a native abort), keeps a consistent run directory
    # and exits with its own code; starting both again with --resume ends
    # with the metrics of a run that was never interrupted.
    import os
    import signal
    import time

    from ppo_jax.run.distributed import EXIT_PEER_LOST

    dirs = {n: tmp_path / n for n in ("p0", "p1")}
    for d in dirs.values():
        d.mkdir()

    coordinator = f"127.0.0.1:{free_port()}"
    first, second = [
        train(cwd, *LONG, "--coordinator", coordinator, "--num-processes", "2",
              "--process-id", str(i))
        for i, cwd in enumerate((dirs["p0"], dirs["p1"]))
    ]  # fmt: skip
    metrics = dirs["p0"] / "run" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 1):
        assert time.monotonic() < deadline and first.poll() is None, "no chunk"
        time.sleep(0.005)
    os.kill(second.pid, signal.SIGKILL)
    t = time.monotonic()
    _, err = first.communicate(timeout=60)
    second.communicate(timeout=60)
    assert first.returncode == EXIT_PEER_LOST, err[-2000:]
    assert time.monotonic() - t < 30  # bounded: JAX's own wait is 100 s or more
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "is gone" in lines[0] and "--resume" in lines[0]
    run_dir = dirs["p0"] / "run"
    (_, runner) = load_run(run_dir, 0)
    done = int(runner.iteration)
    assert 1 <= done < 40, done  # stopped mid-run, at a chunk boundary
    rows = read_rows(run_dir)
    assert max(r["iteration"] for r in rows) == done  # checkpoint and metrics agree

    # Both again with --resume (process 1 reads the same directory, as on a
    # shared file system); compared with the module's 2-process run, never
    # interrupted.
    coordinator = f"127.0.0.1:{free_port()}"
    resumed = [
        subprocess.Popen(
            [sys.executable, "-m", "ppo_jax.train", "--resume", str(run_dir),
             "--coordinator", coordinator, "--num-processes", "2",
             "--process-id", str(i), "--quiet"],
            cwd=cwd, env=ONE_DEVICE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for i, cwd in enumerate((dirs["p0"], dirs["p1"]))
    ]  # fmt: skip
    for proc in resumed:
        finish(proc)
    ignore = {"seconds"}
    got, want = read_rows(run_dir), read_rows(runs[1] / "run")
    assert len(got) == len(want) == 40 * 4
    for a, b in zip(got, want, strict=True):  # repr: NaN (no evaluation) == NaN
        assert repr({k: v for k, v in a.items() if k not in ignore}) == repr(
            {k: v for k, v in b.items() if k not in ignore}
        )
