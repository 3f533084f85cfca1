"""Callbacks of run_training: every metrics row seen once, a policy that acts
as load_policy on the checkpoint of its iteration (each run of a multi-seed
run), early stopping and a raising callback that leave consistent,
resumable files."""

import re
from pathlib import Path

import numpy as np
import pytest

from ppo_jax import PPOConfig, RunSpec, load_policy, run_training
from ppo_jax.analysis.evaluation import load_run
from ppo_jax.run.callbacks import PolicySnapshot, StopRequest
from ppo_jax.run.rundir import read_rows

# 3 envs x 20 steps, 7 iterations in chunks of 2 (the last chunk: 1).
CONFIG = PPOConfig(
    num_envs=3,
    rollout_length=20,
    total_timesteps=3 * 20 * 7,
    max_episode_steps=30,
    update_epochs=2,
    hidden_sizes=(8,),
    save_freq=2,
    normalize_obs=True,  # the snapshot's policy must use its statistics
)
OBS = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32) * 3


def checkpoint_iteration(run_dir):
    return int(load_run(run_dir)[1].iteration)


def test_callbacks_see_every_row_once_and_the_checkpointed_policy(tmp_path):
    run_dir = tmp_path / "run"
    seen_rows, seen_policies = [], []

    def on_metrics(rows):
        seen_rows.extend(rows)

    def on_policy(snapshot: PolicySnapshot):
        # Called after the chunk's checkpoint is on disk: the same policy.
        on_disk = load_policy(snapshot.run_dir, snapshot.run)
        np.testing.assert_array_equal(snapshot.policy()(OBS), on_disk(OBS))
        assert checkpoint_iteration(run_dir) == snapshot.iteration
        assert snapshot.timesteps == snapshot.iteration * CONFIG.batch_size
        seen_policies.append((snapshot.iteration, snapshot.run, snapshot.label))

    spec = RunSpec(CONFIG, num_seeds=2)
    code = run_training(
        spec, run_dir, quiet=True, on_metrics=on_metrics, on_policy=[on_policy]
    )
    assert code == 0
    assert repr(seen_rows) == repr(read_rows(run_dir))  # each row once (NaN too)
    assert len(seen_rows) == 7 * 2
    assert seen_policies == [
        (iteration, run, {"seed": run}) for iteration in (2, 4, 6, 7) for run in (0, 1)
    ]


def test_a_stop_request_ends_the_run_at_its_chunk_and_resume_finishes_it(
    tmp_path, capsys
):
    run_dir = tmp_path / "run"

    def stop_after_four(rows):
        if rows[-1]["iteration"] >= 4:
            return StopRequest("return plateaued")
        return None

    code = run_training(RunSpec(CONFIG), run_dir, on_metrics=stop_after_four)
    out = capsys.readouterr().out
    assert code == 0
    assert "stopped early after iteration 4 of 7 (return plateaued)" in out
    assert "final: timesteps=240 " in out
    assert checkpoint_iteration(run_dir) == 4
    assert [r["iteration"] for r in read_rows(run_dir)] == [1, 2, 3, 4]
    assert run_training(None, None, resume=run_dir, quiet=True) == 0
    assert [r["iteration"] for r in read_rows(run_dir)] == list(range(1, 8))


def test_a_raising_callback_propagates_and_leaves_consistent_files(tmp_path):
    run_dir = tmp_path / "run"

    def broken(snapshot):
        if snapshot.iteration >= 4:
            raise RuntimeError("the callback broke")

    with pytest.raises(RuntimeError, match="the callback broke"):
        run_training(RunSpec(CONFIG), run_dir, quiet=True, on_policy=broken)
    assert checkpoint_iteration(run_dir) == 4
    assert [r["iteration"] for r in read_rows(run_dir)] == [1, 2, 3, 4]
    # The lock is released and the run continues from there.
    assert run_training(None, None, resume=run_dir, quiet=True) == 0
    assert checkpoint_iteration(run_dir) == 7


def test_a_callback_that_is_not_callable_is_refused_before_anything(tmp_path):
    with pytest.raises(TypeError, match="on_metrics takes functions"):
        run_training(RunSpec(CONFIG), tmp_path / "run", on_metrics=[print, 3])
    assert not (tmp_path / "run").exists()


def test_the_readmes_callbacks_example_runs(tmp_path, capsys):
    readme = Path(__file__).resolve().parents[1] / "ppo_jax" / "run" / "README.md"
    section = readme.read_text().split("## Callbacks")[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert '"runs/callbacks"' in block
    block = block.replace('"runs/callbacks"', repr(str(tmp_path / "run")))
    namespace = {}
    exec(compile(block, "ppo_jax/run/README.md", "exec"), namespace)
    assert namespace["code"] == 0
    out = capsys.readouterr().out
    rows = read_rows(tmp_path / "run")
    # Every chunk's policy was shown; the run ended early or after all 46.
    shown = [line for line in out.splitlines() if line.endswith("]")]
    assert len(shown) == len(rows) // 5 + (len(rows) % 5 > 0)
    assert len(rows) == 46 or "stopped early" in out
