"""python -m ppo_jax.compare: curves and a table of several run directories,
with IQM and bootstrap intervals; the sweep table's IQM columns; hostile input."""

import csv
import math
import shutil

import numpy as np
import pytest
from conftest import TINY_ARGS
from PIL import Image

from ppo_jax.analysis.comparison import config_summary, iqm_curve
from ppo_jax.compare import main as compare_main
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.run.reporting import final_returns, write_sweep_table
from ppo_jax.run.rundir import read_rows
from ppo_jax.run.statistics import iqm, summarize
from ppo_jax.train import main as train_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    """The tiny run of conftest with 3 seeds (vmapped) and another lr."""
    run_dir = tmp_path_factory.mktemp("compare") / "seeds"
    argv = [*TINY_ARGS, "--total-timesteps", "1000", "--num-seeds", "3"]
    code = train_main([*argv, "--lr", "1e-3", "--quiet", "--run-dir", str(run_dir)])
    assert code == 0
    return run_dir


def table_rows(stdout):
    """The markdown table's body rows as lists of cells."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| run | env | config | runs | steps/run |")
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def parse_interval(cell):
    """``"-152.13 [-180.30, -140.20]"`` -> (-152.13, -180.3, -140.2)."""
    mid, rest = cell.split(" [")
    low, high = rest.rstrip("]").split(", ")
    return float(mid), float(low), float(high)


def test_compare_draws_one_curve_and_one_row_per_directory(
    trained_run, seeds_run, tmp_path, capsys
):
    single = trained_run[0]
    capsys.readouterr()
    out = tmp_path / "both.png"
    argv = [str(single), str(seeds_run), "--out", str(out), "--label", "one", "three"]
    assert compare_main(argv) == 0
    stdout = capsys.readouterr().out
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(out) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 400
    assert f"plot: {out}" in stdout

    rows = table_rows(stdout)
    assert [r[0] for r in rows] == ["one", "three"]
    for row, run_dir, runs in zip(rows, [single, seeds_run], [1, 3], strict=True):
        finals = list(final_returns(read_rows(run_dir)).values())
        assert len(finals) == runs
        s = summarize(finals)
        assert row[1] == "Pendulum-v1"
        assert row[3] == str(runs) and row[4] == "1,000"
        assert row[5] == "training"  # no evaluations in these runs
        mid, low, high = parse_interval(row[6])
        assert mid == pytest.approx(iqm(finals), abs=0.006)
        assert (low, high) == pytest.approx((s.ci_low, s.ci_high), abs=0.006)
        mean, std = (float(v) for v in row[7].split(" ± "))
        assert (mean, std) == pytest.approx(
            (np.mean(finals), np.std(finals)), abs=0.006
        )
    (final,) = final_returns(read_rows(single)).values()
    assert rows[0][6] == f"{final:.2f} [{final:.2f}, {final:.2f}]"  # one run
    # The lr that tells the two apart is named first.
    assert rows[1][2].startswith("tutorial + lr=0.001, ")
    assert "lr=" not in rows[0][2]


def test_compare_defaults_label_and_out(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert compare_main([str(trained_run[0])]) == 0
    assert (tmp_path / "compare.png").read_bytes().startswith(PNG_SIGNATURE)
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0][0] == trained_run[0].name


def test_curve_is_the_iqm_over_runs_at_each_iteration(seeds_run):
    rows = read_rows(seeds_run)
    steps, mid, low, high = iqm_curve(rows, reps=200)
    iterations = sorted({r["iteration"] for r in rows})
    assert len(steps) == len(iterations) == 5  # every iteration ends episodes
    for k, it in enumerate(iterations):
        values = [r["mean_return"] for r in rows if r["iteration"] == it]
        assert len(values) == 3
        assert mid[k] == iqm(values)
        assert low[k] <= mid[k] <= high[k]
        assert steps[k] == next(r["timesteps"] for r in rows if r["iteration"] == it)


def test_curve_skips_iterations_without_episodes():
    keys = ("iteration", "run", "mean_return", "num_episodes")
    rows = [
        {**dict(zip(keys, values, strict=True)), "timesteps": 10 * values[0]}
        for values in [
            (1, 0, math.nan, 0), (1, 1, math.nan, 0),
            (2, 0, -5.0, 2), (2, 1, math.nan, 0),
            (3, 0, -4.0, 1), (3, 1, -2.0, 1),
        ]
    ]  # fmt: skip
    steps, mid, low, high = iqm_curve(rows, reps=50)
    assert steps.tolist() == [20.0, 30.0] and mid.tolist() == [-5.0, -3.0]
    assert (low[0], high[0]) == (-5.0, -5.0)
    assert all(len(a) == 0 for a in iqm_curve(rows[:2]))


def test_config_summary_names_the_nearest_preset():
    assert config_summary(PPOConfig()) == "tutorial"
    tuned = PPOConfig.from_preset("tuned", env_name="CartPole-v1", seed=3)
    assert config_summary(tuned.replace(total_timesteps=10)) == "tuned"
    assert config_summary(PPOConfig(lr=1e-3)) == "tutorial + lr=0.001"
    changed = PPOConfig(num_envs=4, hidden_sizes=(16, 16), gamma=0.9, lr=0.1, vf_coef=2)
    assert config_summary(changed) == (
        "tutorial + num_envs=4, lr=0.1, gamma=0.9 (+2 more)"
    )
    assert config_summary(changed, first=("hidden_sizes",)).startswith(
        "tutorial + hidden_sizes=16,16, num_envs=4"
    )


# ------------------------------------------------------------ the sweep table
def test_sweep_table_has_iqm_and_interval_columns(tmp_path):
    rows = []
    for i in range(1, 13):
        for r in range(6):
            ret = math.nan if r == 5 else -100.0 * (r % 3 + 1) - i
            rows.append(
                {"run": r, "seed": r % 3, "lr": 3e-4 if r < 3 else 1e-3,
                 "iteration": i, "mean_return": ret, "num_episodes": 0 if r == 5 else 2}
            )  # fmt: skip
    path = write_sweep_table(tmp_path, rows, ("lr",))
    finals = final_returns(rows)
    table = path.read_text().splitlines()
    assert table[0] == (
        "| lr | seeds | final return (mean ± std) | final return IQM [95% CI] |"
    )
    assert table[1] == "|---|---|---|---|"
    with open(tmp_path / "sweep.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == [
        "lr", "seeds", "final_return_mean", "final_return_std", "final_return_iqm",
        "final_return_ci_low", "final_return_ci_high",
    ]  # fmt: skip
    for line, row, runs in zip(table[2:], got, [[0, 1, 2], [3, 4, 5]], strict=True):
        s = summarize([finals[r] for r in runs])
        assert s.n == (3 if runs[0] == 0 else 2)  # run 5 ended no episode
        assert row["seeds"] == "3"
        assert float(row["final_return_mean"]) == pytest.approx(s.mean)
        assert float(row["final_return_std"]) == pytest.approx(s.std)
        assert float(row["final_return_iqm"]) == pytest.approx(s.iqm)
        assert float(row["final_return_ci_low"]) == pytest.approx(s.ci_low)
        assert float(row["final_return_ci_high"]) == pytest.approx(s.ci_high)
        assert line.endswith(
            f"| 3 | {s.mean:.2f} ± {s.std:.2f} | {s.iqm:.2f} "
            f"[{s.ci_low:.2f}, {s.ci_high:.2f}] |"
        )


# ------------------------------------------------------------ hostile input
def one_line_refusal(capsys, argv):
    try:
        code = compare_main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def hostile_cases(good, tmp):
    """(argv, words the message must hold) for each refusal."""
    (tmp / "a_file").write_text("x")
    (tmp / "empty").mkdir()
    (tmp / "started").mkdir()
    (tmp / "started" / "metrics.csv").write_text("run,seed,iteration,timesteps\n")
    (tmp / "garbage").mkdir()
    (tmp / "garbage" / "metrics.csv").write_bytes(b"\x00\xff not csv\n")
    damaged = tmp / "damaged"
    shutil.copytree(good, damaged)
    (damaged / "config.json").write_text("{")
    (tmp / "folder.png").mkdir()
    out = str(tmp / "out.png")
    return [
        ([str(tmp / "missing"), "--out", out], "does not exist"),
        ([str(tmp / "a_file"), "--out", out], "is not a directory"),
        ([str(tmp / "empty"), "--out", out], "metrics.csv' is missing"),
        ([str(good), str(tmp / "started"), "--out", out], "no complete row"),
        ([str(tmp / "garbage"), "--out", out], "no complete row"),
        ([str(damaged), "--out", out], "not a valid ppo_jax config"),
        ([str(good), "--out", str(tmp / "folder.png")], "is not a file"),
        ([str(good), "--out", str(tmp / "plot.pdf")], "does not end in .png"),
        ([str(good), "--out", str(tmp / "no" / "such.png")], "does not exist"),
        ([str(good), "--out", ""], "empty"),
        ([str(good), str(good), "--out", out, "--label", "a"], "1 --label name"),
        ([str(good), "--out", out, "--label", " "], "--label is empty"),
        (["", "--out", out], "empty path"),
        ([], "required"),
    ]


def test_hostile_input_is_one_line_and_writes_nothing(trained_run, tmp_path, capsys):
    for argv, words in hostile_cases(trained_run[0], tmp_path):
        line = one_line_refusal(capsys, argv)
        assert words in line, (argv, line)
        assert not (tmp_path / "out.png").exists(), argv
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".png" and p.is_file()]
