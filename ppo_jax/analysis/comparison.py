"""Run directories side by side, with confidence: what ``python -m
ppo_jax.compare`` draws and prints.

For each run directory: at each iteration, the interquartile mean (IQM) over
its runs (its seeds) of the iteration's mean episodic return (of its
deterministic evaluations when the run has them, ``eval_every``; else of its
training episodes), with a 95%
stratified bootstrap interval (:mod:`ppo_jax.run.statistics`; 500 resamples
per point, against 2000 for the table, to keep a long curve quick); iterations
in which no run ended an episode are left out. The table has one row per run
directory: label, env, config (the nearest preset and how the run differs from
it, ignoring env, steps and seed), runs, steps per run, and the final return
(:func:`ppo_jax.run.reporting.final_run_returns`: the last evaluation, or the
training episodes of the last iterations) as IQM [95% CI] and as mean ± std
over runs, and which return that is. A sweep directory's runs are pooled
(its config says so).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ppo_jax.config.ppo_config import PRESETS, PPOConfig
from ppo_jax.config.presets import DISCRETE_OVERRIDES
from ppo_jax.config.runspec import RunSpec
from ppo_jax.run.reporting import curve_column, final_run_returns
from ppo_jax.run.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    atomic_write_bytes,
    load_config,
    load_run_spec,
)
from ppo_jax.run.statistics import (
    Summary,
    format_iqm,
    format_mean_std,
    iqm,
    stratified_bootstrap_ci,
    summarize,
)

CURVE_REPS = 500  # bootstrap resamples per curve point (the table uses 2000)
MAX_DIFFS = 3  # config differences from the preset named in the table
# Columns of metrics.csv that the comparison reads.
NEEDED = ("run", "iteration", "timesteps", "mean_return", "num_episodes")


class Compared(NamedTuple):
    """One run directory, read and summarised."""

    label: str
    env: str
    config: str  # nearest preset and differences, "-" without config.json
    runs: int
    steps: int  # per run, at its last complete iteration
    final: Summary  # of the runs' final returns
    returns: str  # "evaluation" (deterministic, eval_every) or "training"
    curve: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, iqm, lo, hi


# ----------------------------------------------------------------- checks
def check_out(text: str) -> str:
    if not text.strip():
        return "--out is empty (an unset shell variable?): name a .png file"
    out = Path(text)
    if out.suffix.lower() != ".png":
        return f"--out {str(out)!r} does not end in .png: the figure is a PNG"
    if out.exists() and not out.is_file():
        return f"--out {str(out)!r} exists and is not a file"
    if not out.parent.is_dir():
        return f"the folder of --out {str(out)!r} does not exist"
    return ""


def check_run_dir(run_dir: Path) -> str:
    if not run_dir.exists():
        return f"run directory {str(run_dir)!r} does not exist"
    if not run_dir.is_dir():
        return f"run directory {str(run_dir)!r} is not a directory"
    if not (run_dir / METRICS_FILE).is_file():
        return (
            f"{str(run_dir / METRICS_FILE)!r} is missing: not a ppo_jax run "
            "directory, or its run has not started"
        )
    return ""


def check_rows(run_dir: Path, rows: list[dict[str, Any]]) -> str:
    path = str(run_dir / METRICS_FILE)
    if not rows:
        return (
            f"{path!r} holds no complete row: the run has not finished an "
            "iteration yet (or the file is not a metrics file)"
        )
    missing = [c for c in NEEDED if c not in rows[0]]
    if missing:
        return f"{path!r} lacks the column(s) {', '.join(missing)}"
    return ""  # read_rows parsed every value as a number


# ----------------------------------------------------------------- summaries
def load_run_config(run_dir: Path) -> tuple[PPOConfig, RunSpec] | None:
    """The run's config and run spec; None without ``config.json`` (a damaged
    one is refused: :class:`~ppo_jax.run.rundir.RunDirError`)."""
    if not (run_dir / CONFIG_FILE).exists():
        return None
    config = load_config(run_dir)
    return config, load_run_spec(run_dir, config)


def varying_fields(configs: list[PPOConfig]) -> tuple[str, ...]:
    """Config fields whose values differ between ``configs``."""
    if not configs:
        return ()
    dicts = [c.to_dict() for c in configs]
    return tuple(k for k in dicts[0] if len({repr(d[k]) for d in dicts}) > 1)


def compare_run(
    label: str,
    rows: list[dict[str, Any]],
    config: tuple[PPOConfig, RunSpec] | None,
    varying: tuple[str, ...],
) -> Compared:
    env, config_text = "-", "-"
    if config is not None:
        env = config[0].env_name
        config_text = config_summary(config[0], first=varying)
        if config[1].sweep:
            swept = "; ".join(
                f"{name}={','.join(f'{v:g}' for v in values)}"
                for name, values in config[1].sweep
            )
            config_text += f"; sweep {swept} (runs pooled)"
    finals = final_run_returns(rows)
    column = curve_column(rows)
    return Compared(
        label=label,
        env=env,
        config=config_text,
        runs=len(finals),
        steps=int(max(r["timesteps"] for r in rows)),
        final=summarize(list(finals.values())),
        returns="evaluation" if column == "eval_return" else "training",
        curve=iqm_curve(rows, column=column),
    )


def iqm_curve(
    rows: list[dict[str, Any]], reps: int = CURVE_REPS, column: str = "mean_return"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per iteration with a finite ``column`` in some run (a finished episode,
    an evaluation): ``(steps, iqm, low, high)``, each ``[points]``: the IQM
    over runs of ``column`` and its bootstrap interval (``reps`` resamples,
    seed 0)."""
    by_iteration: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_iteration.setdefault(row["iteration"], []).append(row)
    points = []
    for iteration in sorted(by_iteration):
        its_rows = by_iteration[iteration]
        values = [
            float(r[column])
            for r in its_rows
            if r["num_episodes"] > 0 or column != "mean_return"
            if math.isfinite(r.get(column, math.nan))
        ]
        if not values:
            continue
        low, high = stratified_bootstrap_ci(values, reps=reps)
        points.append((its_rows[0]["timesteps"], iqm(values), low, high))
    x, mid, lo, hi = np.array(points, np.float64).reshape(-1, 4).T
    return x, mid, lo, hi


def config_summary(config: PPOConfig, first: tuple[str, ...] = ()) -> str:
    """The preset ``config`` is closest to (for its env), and the fields it
    changes (at most :data:`MAX_DIFFS` named, those in ``first`` first, then
    in field order): ``"tuned"``, ``"tutorial + lr=0.001, num_envs=4 (+2
    more)"``. Env, steps and seed are not compared."""
    ignored = {"env_name", "total_timesteps", "seed"}
    mine = config.to_dict()
    best: tuple[int, str, list[str]] | None = None
    for name in PRESETS:
        base = PPOConfig.from_preset(name, env_name=config.env_name)
        # A discrete env's preset: the same with its Gaussian options off.
        for candidate in (base, base.replace(**DISCRETE_OVERRIDES.get(name, {}))):
            theirs = candidate.to_dict()
            diffs = [k for k in mine if k not in ignored and mine[k] != theirs[k]]
            if best is None or len(diffs) < best[0]:
                best = (len(diffs), name, diffs)
    assert best is not None
    _, name, diffs = best
    diffs.sort(key=lambda k: k not in first)  # stable: field order otherwise
    if not diffs:
        return name
    shown = ", ".join(f"{k}={_value(mine[k])}" for k in diffs[:MAX_DIFFS])
    more = f" (+{len(diffs) - MAX_DIFFS} more)" if len(diffs) > MAX_DIFFS else ""
    return f"{name} + {shown}{more}"


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ----------------------------------------------------------------- output
def comparison_table(compared: list[Compared]) -> str:
    """One row per run directory (``|`` in a label is escaped, line breaks
    become spaces)."""
    lines = [
        "| run | env | config | runs | steps/run | return | final return IQM "
        "[95% CI] | final return mean ± std |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in compared:
        cells = [
            c.label,
            c.env,
            c.config,
            str(c.runs),
            f"{c.steps:,}",
            c.returns,
            format_iqm(c.final, 2),
            format_mean_std(c.final, 2),
        ]
        cells = [" ".join(x.split()).replace("|", "\\|") for x in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(compared: list[Compared], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    kinds = {c.returns for c in compared}
    for c in compared:
        x, mid, lo, hi = c.curve
        runs = f"{c.runs} run" + ("s" if c.runs != 1 else "")
        if len(kinds) > 1:  # which curve is which return
            runs += f", {c.returns}"
        (line,) = ax.plot(x, mid, lw=1.2, label=f"{c.label} ({runs})")
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    envs = sorted({c.env for c in compared if c.env != "-"})
    ax.set_title(", ".join(envs) if envs else "ppo_jax runs")
    ax.set_xlabel("environment steps (per run)")
    what = (
        "deterministic evaluation return"
        if kinds == {"evaluation"}
        else (
            "training episodic return" if kinds == {"training"} else "episodic return"
        )
    )
    ax.set_ylabel(f"{what}: IQM over runs, 95% CI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
