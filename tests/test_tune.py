"""The hyperparameter search (python -m ppo_jax.tune, ppo_jax.run.search):
the statistics, the search space and its refusals, trials vmapped in one
compile equal to each trial trained alone, and a search killed mid-way and
resumed without losing or repeating a finished trial."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import warnings

import jax
import numpy as np
import pytest
from conftest import ENV, TINY

from ppo_jax import train, tune
from ppo_jax.config.files import read_config_file
from ppo_jax.config.schema import ConfigError
from ppo_jax.run import search
from ppo_jax.run.rundir import RunDirError

optuna = pytest.importorskip("optuna")


# ------------------------------------------------------------------ statistics
def _reference(returns: np.ndarray) -> dict[str, float]:
    """The statistics in plain numpy (nanmean's all-NaN warnings silenced)."""
    last = max(1, math.ceil(0.1 * returns.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        finals = np.nanmean(returns[:, -last:], axis=1)
        means = np.nanmean(returns, axis=1)
        return {
            "final_return": float(np.nanmean(finals)),
            "auc": float(np.nanmean(means)),
            "worst_seed_final": float(np.nanmin(finals)),
        }


@pytest.mark.parametrize("shape", [(3, 40), (1, 7), (4, 1), (2, 25)])
def test_statistics_match_plain_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    returns = rng.normal(-200.0, 50.0, shape)
    returns[rng.random(shape) < 0.3] = np.nan  # iterations that ended no episode
    want = _reference(returns)
    for name, statistic in search.STATISTICS.items():
        got = statistic(returns)
        if math.isnan(want[name]):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(want[name], rel=1e-12), name


def test_statistics_leave_out_what_ended_no_episode():
    nan = np.nan
    returns = np.array([[nan] * 10 + [1.0] * 9 + [nan], [nan] * 20])
    assert search.STATISTICS["final_return"](returns) == 1.0  # seed 1: left out
    assert search.STATISTICS["worst_seed_final"](returns) == 1.0
    assert math.isnan(search.STATISTICS["auc"](np.full((2, 5), nan)))
    assert search.final_window(100) == 10 and search.final_window(7) == 1
    assert tune.STATISTIC_NAMES == tuple(search.STATISTICS)  # --statistic's choices


# --------------------------------------------------------------- search space
def test_params_parse_and_round_trip_through_a_space_file(tmp_path):
    assert search.parse_param("lr=1e-4:3e-3:log") == search.Param(
        "lr", 1e-4, 3e-3, log=True
    )
    assert search.parse_param("clip-eps=0.1:0.3") == search.Param("clip_eps", 0.1, 0.3)
    assert search.parse_param("max_grad_norm=0.5,none").choices == (0.5, None)
    (tmp_path / "space.toml").write_text(
        "[lr]\nlow = 1e-4\nhigh = 3e-3\nlog = true\n"
        "[ent_coef]\nchoices = [0, 0.01]\n"
        "[gamma]\nlow = 0.9\nhigh = 0.999\n"
    )
    space = search.read_space_file(tmp_path / "space.toml")
    assert [p.text() for p in space] == [
        "lr=0.0001:0.003:log",
        "ent_coef=0,0.01",
        "gamma=0.9:0.999",
    ]
    assert search.space_from_dict(search.space_to_dict(space)) == space
    assert search.check_space(space, TINY) == space


@pytest.mark.parametrize(
    "entry, match",
    [
        ("foo=1:2", "a PPOConfig field"),
        ("num_envs=1:8", "a traceable field.*lr, gamma"),
        ("lr=1e-3:1e-3", "LOW < HIGH"),
        ("lr=1e-3:1e-4", "LOW < HIGH"),
        ("lr=0:1e-3:log", "LOW > 0"),
        ("lr=-1e-3:1e-3", "lr=-0.001 is not allowed"),
        ("gamma=0.9:1.5", "gamma=1.5 is not allowed"),
        ("ent_coef=0.01", "at least two different choices"),
        ("lr=1e-4,none", "lr cannot be none"),
    ],
)
def test_a_bad_space_is_refused_by_check_space(entry, match):
    with pytest.raises(ConfigError, match=match):
        search.check_space([search.parse_param(entry)], TINY)


# ------------------------------------------------------- bad input, CLI level
TINY_TUNE = [
    "--num-envs", "4", "--rollout-length", "32", "--max-episode-steps", "50",
    "--update-epochs", "1", "--hidden-sizes", "8,8", "--total-timesteps", "384",
]  # fmt: skip
BAD_INPUT = {
    "unknown field": ["--param", "foo=1:2"],
    "non-traceable field": ["--param", "num_envs=2:8"],
    "empty range": ["--param", "lr=1e-3:1e-3"],
    "inverted range": ["--param", "clip_eps=0.3:0.1"],
    "log range from 0": ["--param", "lr=0:1e-3:log"],
    "a bound the config refuses": ["--param", "gamma=0.9:1.2"],
    "malformed param": ["--param", "lr=fast"],
    "no field": [],
    "field twice": ["--param", "lr=1e-4:1e-3", "--param", "lr=1e-4:1e-2"],
    "wrong statistic": ["--param", "lr=1e-4:1e-3", "--statistic", "median"],
    "zero trials": ["--param", "lr=1e-4:1e-3", "--trials", "0"],
    "zero batch": ["--param", "lr=1e-4:1e-3", "--batch", "0"],
    "missing space file": ["--space", "OUT/space.toml"],
    "resume with a param": ["--resume", "OUT/run", "--param", "lr=1e-4:1e-3"],
    "resume of nothing": ["--resume", "OUT/run"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_search_input_is_one_sentence_before_anything_compiles(
    case, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("OUT", str(out)) for a in BAD_INPUT[case]]
    if "--resume" not in argv:
        argv = [*TINY_TUNE, *argv, "--run-dir", str(out / "run")]
    try:
        code = tune.main(argv)
    except SystemExit as e:  # argparse's own exit, should one escape
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, err)
    assert "Traceback" not in err
    assert list(out.iterdir()) == []  # no run directory: nothing compiled


def test_without_optuna_the_command_says_how_to_install_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna fails
    code = tune.main(
        [*TINY_TUNE, "--param", "lr=1e-4:1e-3", "--run-dir", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "pip install -e '.[tune]'" in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------- one compile: trials equal alone
def test_vmapped_trials_equal_each_trial_trained_alone(tiny_train, tmp_path, capsys):
    # 3 trials, 2 at a time, 2 seeds each: the third trial takes one slot
    # while the other stays idle (a partial re-initialization).
    run_dir = tmp_path / "search"
    result = search.run_search(
        TINY,
        {"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "clip_eps": [0.1, 0.3]},
        trials=3,
        batch=2,
        num_seeds=2,
        statistic="auc",  # TINY's last iteration ends no episode
        run_dir=run_dir,
    )
    out = capsys.readouterr().out
    assert result.exit_code == 0
    assert (
        "objective (maximized): auc: the mean over the trial's seeds" in out
    )  # the objective, stated
    assert out.count("compiled in") == 1  # one compile for every trial
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(complete) == 3
    for trial in complete:
        config = TINY.replace(**trial.params)
        curves = np.stack(
            [
                np.asarray(
                    tiny_train(jax.random.key(TINY.seed + s), config.hyperparams())[
                        1
                    ].mean_return
                )
                for s in range(2)
            ]
        )
        alone = search.STATISTICS["auc"](curves)
        assert trial.value == pytest.approx(alone, rel=1e-4, abs=1e-3), trial
        np.testing.assert_allclose(
            trial.seed_values, search.seed_mean_returns(curves), rtol=1e-4, atol=1e-3
        )
    best = max(complete, key=lambda t: t.value)
    assert result.best == best
    _, fields = read_config_file(run_dir / "best_config.toml")
    assert fields["lr"] == best.params["lr"]
    assert fields["clip_eps"] == best.params["clip_eps"]
    # The directory holds this search: another one is refused, the same one
    # (resume=True) finds nothing left to train.
    with pytest.raises(RunDirError, match="already holds a search"):
        search.run_search(TINY, {"lr": "1e-4:3e-3"}, trials=1, run_dir=run_dir)
    with pytest.raises(RunDirError, match="holds another search.*base config lr"):
        search.run_search(
            TINY.replace(lr=1e-3),
            {"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "clip_eps": [0.1, 0.3]},
            trials=3, batch=2, num_seeds=2, statistic="auc", run_dir=run_dir,
            resume=True,
        )  # fmt: skip
    again = search.resume_search(run_dir)
    assert again.exit_code == 0 and again.trials == result.trials
    assert "compiled in" not in capsys.readouterr().out


def test_a_pruned_trial_frees_its_slot_for_the_next(tmp_path, monkeypatch):
    # Optuna's pruner says "prune" to every trial after the first two: each
    # pruned pair's slots take the next pair at the same chunk boundary.
    monkeypatch.setattr(
        optuna.trial.Trial, "should_prune", lambda trial: trial.number >= 2
    )
    result = search.run_search(
        TINY, {"lr": "1e-4:3e-3:log"}, trials=6, batch=2, num_seeds=2,
        statistic="auc", run_dir=tmp_path / "search", prune=True, quiet=True,
    )  # fmt: skip
    assert result.exit_code == 0 and result.finished == 6
    assert [t.state for t in result.trials] == ["COMPLETE"] * 2 + ["PRUNED"] * 4
    study = optuna.load_study(
        study_name="ppo_jax", storage=f"sqlite:///{tmp_path / 'search' / 'study.db'}"
    )
    for t in result.trials[2:]:
        assert t.note == "pruned at iteration 2 of 3"
        frozen = study.trials[t.number]
        assert frozen.intermediate_values == {2: t.value}  # its last report


# ------------------------------------------------- killed and resumed (CLI)
def _states(db) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return [row[0] for row in con.execute("SELECT state FROM trials")]
    except sqlite3.Error:  # not created yet, or being written
        return []


def _load(run_dir):
    return optuna.load_study(
        study_name="ppo_jax", storage=f"sqlite:///{run_dir / 'study.db'}"
    )


# Pendulum, 4 envs x 32 steps, 1000 iterations: a pair of trials trains for
# half a second or more on a 2-core CPU, time enough to kill it in training.
KILL_SEARCH = [
    "--num-envs", "4", "--rollout-length", "32", "--max-episode-steps", "50",
    "--update-epochs", "1", "--hidden-sizes", "8,8", "--save-freq", "100",
    "--total-timesteps", str(4 * 32 * 1000), "--param", "lr=1e-4:3e-3:log",
    "--param", "clip_eps=0.1,0.2,0.3", "--trials", "4", "--batch", "2",
    "--num-seeds", "1",
]  # fmt: skip


def test_a_killed_search_resumes_without_losing_or_repeating_a_trial(tmp_path, capsys):
    run_dir = tmp_path / "search"
    db = run_dir / "study.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppo_jax.tune", *KILL_SEARCH, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            states = _states(db)
            if states.count("COMPLETE") >= 2 and "RUNNING" in states:
                break  # the first pair told, the second in training
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    before = {t.number: t for t in _load(run_dir).trials}
    finished = {n: t for n, t in before.items() if t.state.name == "COMPLETE"}
    running = {n: t for n, t in before.items() if t.state.name == "RUNNING"}
    assert len(finished) == 2 and running, before

    # Resumed and trained by the commands' main(), in this process.
    assert tune.main(["--resume", str(run_dir)]) == 0
    assert "resuming: 2 of 4 trials finished" in capsys.readouterr().out
    after = {t.number: t for t in _load(run_dir).trials}
    complete = [t for t in after.values() if t.state.name == "COMPLETE"]
    assert len(complete) == 4  # --trials, exactly
    for n, t in finished.items():  # kept as they were: same params and value
        assert after[n].state.name == "COMPLETE"
        assert after[n].params == t.params and after[n].value == t.value
    for n in running:  # left running by the kill: failed, not counted
        assert after[n].state.name == "FAIL"
    new = [t for t in complete if t.number not in finished]
    assert len(new) == 2 and min(t.number for t in new) > max(running)
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == 4  # no trial trained twice
    # The tables and the best config.
    csv_lines = (run_dir / "trials.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + len(after)
    assert (run_dir / "search.png").stat().st_size > 0
    best = _load(run_dir).best_trial
    text = (run_dir / "best_config.toml").read_text()
    assert tomllib.loads(text)["lr"] == best.params["lr"]
    # 2 seeds: the search's program (2 runs vmapped), from the compilation cache.
    code = train.main(
        ["--config", str(run_dir / "best_config.toml"), "--num-seeds", "2",
         "--quiet", "--run-dir", str(tmp_path / "best")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    _, fields = read_config_file(tmp_path / "best" / "config.json")
    assert fields["lr"] == best.params["lr"]
    assert fields["clip_eps"] == best.params["clip_eps"]
