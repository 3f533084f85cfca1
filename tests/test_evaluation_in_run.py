"""Evaluation inside the compiled run (eval_every): each evaluation is
``python -m ppo_jax.evaluate`` on the checkpoint of its iteration, for
feedforward and recurrent networks, single runs, sweeps and vmapped trains; it
leaves training unchanged; the final line, compare and the plot use it."""

import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

from ppo_jax import (
    PPOConfig,
    RunSpec,
    build_pipeline,
    evaluate_policy,
    make_train,
    run_training,
)
from ppo_jax.algo.evaluation import evaluation_due
from ppo_jax.analysis.evaluation import evaluate_run
from ppo_jax.compare import main as compare_main
from ppo_jax.evaluate import main as evaluate_main
from ppo_jax.run.callbacks import PolicySnapshot
from ppo_jax.run.reporting import curve_column, final_run_returns
from ppo_jax.run.rundir import read_rows

TESTS = Path(__file__).resolve().parent
EVAL_EVERY = 3
# MatchEnv: 8-step episodes, return = cards named right (0 to 8). 7 iterations
# in chunks of 2: evaluations after 3, 6 and 7 (the last); checkpoints after 2,
# 4, 6 and 7.
CONFIG = PPOConfig(
    env_name="user_components:MatchEnv",
    policy_std=None,
    num_envs=4,
    rollout_length=8,
    total_timesteps=4 * 8 * 7,
    update_epochs=2,
    lr=1e-2,
    hidden_sizes=(8,),
    recurrent_size=8,
    normalize_obs=True,  # an evaluation uses the run's frozen statistics
    save_freq=2,
    eval_every=EVAL_EVERY,
    eval_episodes=5,
    eval_seed=7,
)
EVALUATED = (3, 6, 7)


def test_evaluation_is_due_every_eval_every_iterations_and_at_the_end():
    iterations = np.arange(1, CONFIG.num_iterations + 1)
    due = np.asarray(evaluation_due(iterations, CONFIG))
    assert tuple(iterations[due]) == EVALUATED
    off = CONFIG.replace(eval_every=0)
    assert not np.asarray(evaluation_due(iterations, off)).any()


@pytest.mark.parametrize(
    "network,spec_fields,actions",
    [
        ("mlp", {}, "mode"),  # a single run
        ("gru", {"sweep": (("lr", (1e-2, 3e-3)),)}, "mode"),  # a sweep, vmapped
        # Sampled actions (a memory carried through each episode, as sampled)
        ("gru", {"sweep": (("lr", (1e-2, 3e-3)),)}, "sample"),
    ],
)
def test_each_evaluation_is_evaluate_on_that_iterations_checkpoint(
    network, spec_fields, actions, tmp_path, capsys, monkeypatch
):
    monkeypatch.syspath_prepend(str(TESTS))
    run_dir = tmp_path / "run"
    spec = RunSpec(CONFIG.replace(network=network, eval_actions=actions), **spec_fields)
    expected = {}
    played, other = {}, {}  # returns with the run's actions and the other kind

    def on_policy(snapshot: PolicySnapshot):
        # The checkpoint of this iteration is on disk and is this runner.
        if snapshot.iteration in EVALUATED:
            returns, lengths = evaluate_run(
                snapshot.pipeline, snapshot.runner, CONFIG.eval_episodes, 7
            )
            played[snapshot.iteration, snapshot.run] = returns
            flipped = {"mode": "sample", "sample": "mode"}[actions]
            other[snapshot.iteration, snapshot.run] = evaluate_run(
                snapshot.pipeline, snapshot.runner, CONFIG.eval_episodes, 7, flipped
            )[0]
            expected[snapshot.iteration, snapshot.run] = (
                returns.mean(),
                lengths.mean(),
            )

    assert run_training(spec, run_dir, on_policy=on_policy) == 0
    out = capsys.readouterr().out
    rows = read_rows(run_dir)
    assert len(rows) == 7 * spec.num_runs
    for row in rows:
        evaluated = row["iteration"] in EVALUATED
        assert math.isfinite(row["eval_return"]) == evaluated, row
        assert math.isfinite(row["eval_length"]) == evaluated, row
        if (row["iteration"], row["run"]) in expected:
            mean_return, mean_length = expected[row["iteration"], row["run"]]
            assert row["eval_return"] == pytest.approx(mean_return, rel=1e-6)
            assert row["eval_length"] == pytest.approx(mean_length, rel=1e-6)
    assert {k[0] for k in expected} == {6, 7}  # checkpoints that are evaluations
    # Sampled and deterministic actions play different episodes (not a
    # no-op): the returns differ somewhere, 8 choices an episode, 5 episodes.
    assert any(not np.array_equal(played[k], other[k]) for k in other)
    assert all(r["eval_length"] == 8 for r in rows if r["iteration"] in EVALUATED)

    # Progress lines show evaluations where there are some; the final line
    # reports the last one (mean over runs).
    lines = [line for line in out.splitlines() if line.startswith("iteration")]
    assert [int(line.split()[1]) for line in lines if "eval return" in line] == list(
        EVALUATED
    )
    last = [r["eval_return"] for r in rows if r["iteration"] == 7]
    final = re.search(r"^final: .* eval_return=(\S+) ", out, re.M)
    assert final is not None, out
    assert float(final.group(1)) == pytest.approx(np.mean(last), abs=0.006)

    # python -m ppo_jax.evaluate on the last checkpoint plays the same episodes.
    for run in range(spec.num_runs):
        argv = [str(run_dir), "--run", str(run), "--episodes", "5", "--seed", "7"]
        assert evaluate_main(argv) == 0
        printed = capsys.readouterr().out.splitlines()[-1]
        assert printed.startswith(f"mean_return={last[run]:.2f} "), printed

    # The plot draws the evaluations; compare reads them too: the last one per
    # run is the final figure.
    assert curve_column(rows) == "eval_return"
    assert final_run_returns(rows) == dict(enumerate(last))
    out_png = str(tmp_path / "c.png")
    assert compare_main([str(run_dir), "--out", out_png, "--label", "ours"]) == 0
    table = capsys.readouterr().out
    (row,) = [line for line in table.splitlines() if line.startswith("| ours ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "evaluation"
    mean = float(cells[7].split(" ± ")[0])
    assert mean == pytest.approx(np.mean(last), abs=0.006)


def test_evaluations_leave_training_as_it_was_and_vmap_over_seeds():
    from user_components import MatchEnv

    env = MatchEnv()
    keys = jax.random.split(jax.random.key(3), 2)
    evaluating = make_train(CONFIG, env=env, env_params=env.default_params)
    plain = make_train(
        CONFIG.replace(eval_every=0), env=env, env_params=env.default_params
    )
    runner, metrics = jax.jit(evaluating)(keys[0])
    _, plain_metrics = jax.jit(plain)(keys[0])
    for name in plain_metrics._fields:
        if not name.startswith("eval_"):
            np.testing.assert_allclose(
                getattr(metrics, name), getattr(plain_metrics, name), rtol=1e-6
            )
    assert np.isnan(plain_metrics.eval_return).all()
    evaluated = np.isfinite(np.asarray(metrics.eval_return))
    assert tuple(np.flatnonzero(evaluated) + 1) == EVALUATED

    # The last evaluation: evaluate_policy on the final runner, eval_seed's key.
    pipeline = build_pipeline(CONFIG, env=env, env_params=env.default_params)
    returns, _ = jax.jit(
        lambda params, stats: evaluate_policy(
            pipeline, params, stats, jax.random.key(7), 5
        )
    )(runner.agent.actor_params, runner.envs.obs_stats)
    assert float(metrics.eval_return[-1]) == pytest.approx(float(returns.mean()))

    # Vmapped over seeds (the due iterations come from the scan, not the
    # batched runner): each seed as alone.
    _, both = jax.jit(jax.vmap(evaluating))(keys)
    np.testing.assert_allclose(both.eval_return[0], metrics.eval_return, rtol=1e-6)
    assert np.isfinite(np.asarray(both.eval_return)).sum() == 2 * len(EVALUATED)
