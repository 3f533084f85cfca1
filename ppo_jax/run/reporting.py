"""Host-side output of a run: metrics CSV, progress lines, plots, sweep table.

Rows carry a run axis: one row per (iteration, run), labelled with the run's
index, seed and swept hyperparameter values.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ppo_jax.algo.ppo import Metrics
from ppo_jax.config.ppo_config import PRESETS, PPOConfig, bare_env_name
from ppo_jax.run.rundir import PLOT_FILE, SWEEP_CSV, SWEEP_TABLE, read_rows
from ppo_jax.run.statistics import format_iqm, summarize

RECENT = 10  # iterations the final return is averaged over


def columns(sweep_fields: tuple[str, ...] = ()) -> tuple[str, ...]:
    return ("run", "seed", *sweep_fields, *Metrics._fields, "seconds")


def metrics_rows(metrics, keep: int, seconds: float, labels: list[dict]) -> list[dict]:
    """Turn a chunk's host Metrics (leaves ``[R, chunk]``) into CSV rows.

    Only the first ``keep`` iterations are real (the rest ran past the end of
    the run and left the state unchanged). ``labels[r]`` holds run ``r``'s
    seed and swept values; ``seconds`` is the wall time per iteration.
    """
    m = {k: np.asarray(v)[:, :keep] for k, v in metrics._asdict().items()}
    rows = []
    for i in range(keep):
        for r, label in enumerate(labels):
            row = {"run": r, **label, **{k: m[k][r, i].item() for k in m}}
            row["all_finite"] = int(row["all_finite"])
            row["seconds"] = seconds
            rows.append(row)
    return rows


def iteration_summary(rows: list[dict]) -> dict:
    """One iteration's rows (one per run) -> one row of means over runs."""
    if len(rows) == 1:
        return rows[0]
    summary = dict(rows[0])
    for key in ("mean_return", "mean_length", "eval_return", "actor_loss",
                "critic_loss"):  # fmt: skip
        values = [r[key] for r in rows if math.isfinite(r.get(key, math.nan))]
        summary[key] = float(np.mean(values)) if values else math.nan
    return summary


def format_iteration(row: dict, num_runs: int = 1) -> str:
    """The tutorial's per-iteration summary, on one line."""
    runs = f" (mean of {num_runs} runs)" if num_runs > 1 else ""
    evaluated = ""
    if math.isfinite(row.get("eval_return", math.nan)):
        evaluated = f"eval return {row['eval_return']:10.2f} | "
    return (
        f"iteration {row['iteration']:>5} | "
        f"avg episodic length {row['mean_length']:7.1f} | "
        f"avg episodic return {row['mean_return']:10.2f} | "
        f"{evaluated}"
        f"avg loss {row['actor_loss']:+.5f} | "
        f"timesteps {row['timesteps']:>10,} | "
        f"{row['seconds']:.3f} s/iteration{runs}"
    )


def final_returns(rows: list[dict], last: int = RECENT) -> dict[int, float]:
    """Per run: mean return of the episodes that ended in its last ``last``
    iterations in which episodes ended (NaN if none did): long episodes (1000
    steps over 32-step rollouts) end in only one iteration of 30 or so."""
    by_run = defaultdict(list)
    for row in rows:
        by_run[row["run"]].append(row)
    result = {}
    for run, run_rows in by_run.items():
        recent = [r for r in run_rows if r["num_episodes"] > 0][-last:]
        count = sum(r["num_episodes"] for r in recent)
        total = sum(r["mean_return"] * r["num_episodes"] for r in recent)
        result[run] = total / count if count else math.nan
    return result


def has_evaluations(rows: list[dict]) -> bool:
    """Did the run evaluate its deterministic policy (``eval_every``)?"""
    return any(math.isfinite(r.get("eval_return", math.nan)) for r in rows)


def final_eval_returns(rows: list[dict]) -> dict[int, float]:
    """Per run: its last evaluation's mean return (NaN if it has none)."""
    result: dict[int, float] = {}
    for row in rows:
        value = row.get("eval_return", math.nan)
        if math.isfinite(value) or row["run"] not in result:
            result[row["run"]] = value
    return result


def curve_column(rows: list[dict]) -> str:
    """The return a learning curve shows: the evaluations when the run has
    them (as papers plot), else the training episodes' returns."""
    return "eval_return" if has_evaluations(rows) else "mean_return"


def final_run_returns(rows: list[dict]) -> dict[int, float]:
    """Per run, the final figure its comparisons use: the last evaluation
    when the run has them, else :func:`final_returns`."""
    return final_eval_returns(rows) if has_evaluations(rows) else final_returns(rows)


def mean_of_runs(values: dict[int, float]) -> float:
    """The mean over runs of the finite ``values`` (NaN if none is)."""
    finite = [v for v in values.values() if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def recent_mean_return(rows: list[dict], last: int = RECENT) -> float:
    """Mean over runs of :func:`final_returns` (the ``final:`` line's figure)."""
    return mean_of_runs(final_returns(rows, last))


def tutorial_context(config: PPOConfig) -> str | None:
    """Closing words for a run of the tutorial's algorithm on Pendulum (the
    default command), whose returns a newcomer might read as a failure."""
    if bare_env_name(config.env_name) != "Pendulum-v1":
        return None
    free = {"seed": 0, "total_timesteps": 1, "save_freq": 1}
    tutorial = PRESETS["tutorial"].replace(env_name=config.env_name, **free)
    if config.replace(**free) != tutorial:
        return None
    return (
        "note: this is the PPO-for-beginners tutorial's algorithm (fixed "
        "exploration noise, rewards-to-go, no observation or reward scaling): on "
        "Pendulum-v1 its return after 1M steps differs a lot between seeds, and "
        "one seed's curve differs between CPU models; the tutorial reports about "
        "-370 to -665 (benchmarks/README.md, 'Learning', has a distribution over "
        "seeds). For a solved Pendulum (about -150 after 1M steps) run with "
        "--preset tuned."
    )


def _settings(rows: list[dict], sweep_fields: tuple[str, ...]):
    """Group run indices by their swept values, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for row in rows:
        key = tuple(row[f] for f in sweep_fields)
        runs = groups.setdefault(key, [])
        if row["run"] not in runs:
            runs.append(row["run"])
    return groups


def plot_learning_curve(run_dir: Path, title: str, sweep_fields=()) -> Path:
    """Mean return against steps (the evaluations' when the run has them);
    with several seeds, a band of +-1 std over them; with a sweep, one curve
    per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(run_dir)
    column = curve_column(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for setting, runs in _settings(rows, sweep_fields).items():
        curves = np.array(
            [[r.get(column, math.nan) for r in rows if r["run"] == run] for run in runs]
        )
        steps = np.array([r["timesteps"] for r in rows if r["run"] == runs[0]])
        with np.errstate(all="ignore"):
            valid = np.isfinite(curves).any(axis=0)
            mean = np.nanmean(
                np.where(np.isfinite(curves), curves, np.nan)[:, valid], 0
            )
            std = np.nanstd(curves[:, valid], 0)
        label = ", ".join(
            f"{f}={v:g}" for f, v in zip(sweep_fields, setting, strict=True)
        )
        if len(runs) > 1:
            label = f"{label} ({len(runs)} seeds)" if label else f"{len(runs)} seeds"
        (line,) = ax.plot(steps[valid], mean, lw=1.2, label=label or None)
        if len(runs) > 1:
            ax.fill_between(
                steps[valid], mean - std, mean + std, color=line.get_color(), alpha=0.2
            )
    ax.set_xlabel("environment steps (per run)")
    ax.set_ylabel(
        "deterministic evaluation return"
        if column == "eval_return"
        else "mean episodic return (training)"
    )
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(run_dir) / PLOT_FILE
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_sweep_table(run_dir: Path, rows: list[dict], sweep_fields) -> Path:
    """One row per setting: final return over its seeds as mean ± std, and as
    IQM with its 95% stratified bootstrap interval (:mod:`ppo_jax.run.statistics`;
    runs that ended no episode are left out of both). The final return is the
    last evaluation's when the runs evaluated (:func:`final_run_returns`)."""
    finals = final_run_returns(rows)
    what = "final eval return" if has_evaluations(rows) else "final return"
    lines = [
        "| " + " | ".join(sweep_fields) + f" | seeds | {what} (mean ± std) "
        f"| {what} IQM [95% CI] |",
        "|" + "---|" * (len(sweep_fields) + 3),
    ]
    with open(Path(run_dir) / SWEEP_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                *sweep_fields,
                "seeds",
                "final_return_mean",
                "final_return_std",
                "final_return_iqm",
                "final_return_ci_low",
                "final_return_ci_high",
            ]
        )
        for setting, runs in _settings(rows, sweep_fields).items():
            s = summarize([finals[r] for r in runs])
            writer.writerow(
                [*setting, len(runs), s.mean, s.std, s.iqm, s.ci_low, s.ci_high]
            )
            cells = " | ".join(f"{v:g}" for v in setting)
            lines.append(
                f"| {cells} | {len(runs)} | {s.mean:.2f} ± {s.std:.2f} | "
                f"{format_iqm(s, 2)} |"
            )
    path = Path(run_dir) / SWEEP_TABLE
    path.write_text("\n".join(lines) + "\n")
    return path
