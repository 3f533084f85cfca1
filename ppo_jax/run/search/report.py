"""What a search shows: the lines it prints (the header, a line per finished
group of trials, the outcome) and the files it rewrites in the run directory
as trials finish: ``trials.csv``, ``trials.md``, ``best_config.toml`` and
``search.png``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ppo_jax.config.files import dump_config
from ppo_jax.run import rundir
from ppo_jax.run.search.objectives import STATISTICS
from ppo_jax.run.search.settings import (
    BASE_CONFIG_FILE,
    BEST_CONFIG_FILE,
    PLOT_FILE,
    STUDY_FILE,
    TRIALS_CSV,
    TRIALS_TABLE,
    SearchSettings,
)
from ppo_jax.run.search.space import choice_text
from ppo_jax.run.search.study import (
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    SearchResult,
    TrialRecord,
    best_record,
)

PLOT_EVERY_S = 30.0  # search.png: redrawn at most this often, and at the end


class SearchReport:
    """A search's printed lines and its tables, best config and plot."""

    def __init__(self, settings: SearchSettings, run_dir: Path):
        self.settings = settings
        self.config = settings.config
        self.run_dir = run_dir
        self.statistic = STATISTICS[settings.statistic]
        self.plotted_at = -math.inf  # when search.png was last drawn

    # ----------------------------------------------------------------- lines
    def header(self, finished: int, interrupted: list[int], remaining: int) -> None:
        """What the search runs: trials, objective, space; how it resumes."""
        s, c = self.settings, self.config
        print(
            f"ppo_jax.tune: {c.env_name}, {s.trials} trials of {s.num_seeds} "
            f"seed(s), {min(s.batch, max(remaining, 1))} at a time, "
            f"{c.num_iterations} iterations of {c.batch_size} steps each; run "
            f"dir {self.run_dir}",
            flush=True,
        )
        print(
            f"objective (maximized): {self.statistic.stated(c.num_iterations)}",
            flush=True,
        )
        print("space: " + "; ".join(p.describe() for p in s.space), flush=True)
        if finished or interrupted:
            line = f"resuming: {finished} of {s.trials} trials finished"
            if interrupted:
                numbers = ", ".join(f"#{n}" for n in interrupted)
                line += (
                    f"; {len(interrupted)} interrupted trial(s) ({numbers}) marked "
                    "failed, new trials take their place"
                )
            print(line, flush=True)

    def progress(
        self, records: list[TrialRecord], told: list[int], seconds: float
    ) -> None:
        """A line for the trials just ``told``: their values, the best so far."""
        by_number = {r.number: r for r in records}
        parts = [_short(by_number[n]) for n in told]
        best = best_record(records)
        best_text = (
            f"best #{best.number} {best.value:.2f}"
            if best and best.value is not None
            else "no best yet"
        )
        finished = sum(r.finished for r in records)
        print(
            f"trials {', '.join(parts)} | {best_text} | {finished} of "
            f"{self.settings.trials} finished | {seconds:.1f} s",
            flush=True,
        )

    def outcome(self, result: SearchResult, abandoned: list[int], problem: str) -> None:
        """How the search ended (``abandoned``: the trials a stop marked
        failed; ``problem``: the failed write), and where its files are."""
        s, d = self.settings, self.run_dir
        records = result.trials
        counts = {
            state: sum(r.state == state and r.finished for r in records)
            for state in ("COMPLETE", "FAIL", "PRUNED")
        }
        if result.exit_code == EXIT_INTERRUPTED:
            numbers = ", ".join(f"#{n}" for n in abandoned)
            print(
                f"stopped: {result.finished} of {s.trials} trials finished, kept "
                f"in {d / STUDY_FILE}"
                + (
                    f"; the trials in training ({numbers}) are marked failed"
                    if numbers
                    else ""
                )
                + f"; continue with --resume {d}",
                file=sys.stderr,
            )
            return
        if result.exit_code == EXIT_WRITE_FAILED:
            print(
                f"error: {problem}; stopped, keeping the finished trials in "
                f"{d / STUDY_FILE}; continue with --resume {d}",
                file=sys.stderr,
            )
            return
        print(
            f"search done: {result.finished} of {s.trials} trials finished "
            f"({counts['COMPLETE']} complete, {counts['FAIL']} failed, "
            f"{counts['PRUNED']} pruned) in {result.seconds:.1f} s (compile "
            f"{result.compile_s:.1f} s)",
            flush=True,
        )
        best = result.best
        if best is None or best.value is None:
            print("no trial completed: no best config", flush=True)
            return
        params = ", ".join(f"{k}={choice_text(v)}" for k, v in best.params.items())
        print(
            f"best: trial #{best.number}, {s.statistic}={best.value:.2f}, {params}\n"
            f"best config: {d / BEST_CONFIG_FILE} (python -m ppo_jax.train "
            f"--config {d / BEST_CONFIG_FILE}); trials: {d / TRIALS_TABLE}, "
            f"{d / TRIALS_CSV}; plot: {d / PLOT_FILE}",
            flush=True,
        )

    # ----------------------------------------------------------------- files
    def write(self, records: list[TrialRecord], last: bool = False) -> None:
        """trials.csv, trials.md and best_config.toml, each written atomically;
        search.png too if ``last`` or PLOT_EVERY_S have passed since it was
        drawn (drawing takes a few tenths of a second: with pruning, trials
        finish in small groups)."""
        d = self.run_dir
        rundir.atomic_write_bytes(d / TRIALS_CSV, self._csv(records).encode())
        rundir.atomic_write_bytes(d / TRIALS_TABLE, self._table(records).encode())
        best = best_record(records)
        if best is not None:
            rundir.atomic_write_bytes(
                d / BEST_CONFIG_FILE, self._best_config_text(best).encode()
            )
        now = time.perf_counter()
        if last or now - self.plotted_at >= PLOT_EVERY_S:
            rundir.atomic_write_bytes(d / PLOT_FILE, self._plot(records))
            self.plotted_at = now

    def _seeds(self) -> list[int]:
        return [self.config.seed + s for s in range(self.settings.num_seeds)]

    def _csv(self, records: list[TrialRecord]) -> str:
        names = [p.name for p in self.settings.space]
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(
            ["number", "state", "value", *names,
             *(f"seed_{seed}" for seed in self._seeds()), "seconds", "note"]
        )  # fmt: skip
        for r in records:
            writer.writerow(
                [r.number, r.state, _cell(r.value),
                 *(_cell(r.params.get(n, "")) for n in names),
                 *(_cell(v) for v in _pad(r.seed_values, len(self._seeds()))),
                 _cell(r.seconds), r.note]
            )  # fmt: skip
        return text.getvalue()

    def _table(self, records: list[TrialRecord]) -> str:
        s, c = self.settings, self.config
        names = [p.name for p in s.space]
        best = best_record(records)
        finished = sum(r.finished for r in records)
        counts = ", ".join(
            f"{sum(r.state == st and r.finished for r in records)} {word}"
            for st, word in (("COMPLETE", "complete"), ("FAIL", "failed"),
                             ("PRUNED", "pruned"))
        )  # fmt: skip
        seeds = self._seeds()
        lines = [
            f"# Trials of the search in {self.run_dir}",
            "",
            f"Base config: {c.env_name}, {c.num_iterations} iterations of "
            f"{c.batch_size} steps ({BASE_CONFIG_FILE}); space: "
            + "; ".join(p.describe() for p in s.space) + ".",
            "",
            f"Objective (maximized): {self.statistic.stated(c.num_iterations)}; "
            f"over seeds {', '.join(map(str, seeds))} (the same for every trial).",
            "",
            f"{finished} of {s.trials} trials finished ({counts})"
            + (f"; best: #{best.number}." if best else "."),
            "",
            "| trial | state | " + " | ".join([s.statistic, *names])
            + " | " + " | ".join(f"seed {seed}" for seed in seeds)
            + " | seconds | note |",
            "|" + "---|" * (len(names) + len(seeds) + 5),
        ]  # fmt: skip
        for r in records:
            value = "" if r.value is None else f"{r.value:.2f}"
            if best is not None and r.number == best.number:
                value = f"**{value}**"
            params = [choice_text(r.params[n]) if n in r.params else "" for n in names]
            per_seed = [
                "" if v is None else f"{v:.2f}" for v in _pad(r.seed_values, len(seeds))
            ]
            secs = "" if r.seconds is None else f"{r.seconds:.1f}"
            lines.append(
                f"| {r.number} | {r.state} | {value} | " + " | ".join(params + per_seed)
                + f" | {secs} | {r.note} |"
            )  # fmt: skip
        return "\n".join(lines) + "\n"

    def _best_config_text(self, best: TrialRecord) -> str:
        config = self.config.replace(**best.params)
        path = self.run_dir / BEST_CONFIG_FILE
        header = (
            f"# The best trial (#{best.number}) of the search in {self.run_dir}:\n"
            f"# {self.settings.statistic}={best.value:.4f}\n"
            f"# ({self.statistic.description}).\n"
            f"# Train it: python -m ppo_jax.train --config {path}\n"
        )
        return header + dump_config(config, "toml")

    def _plot(self, records: list[TrialRecord]) -> bytes:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(7, 4))
        complete = [r for r in records if r.state == "COMPLETE" and r.value is not None]
        if complete:
            x = [r.number for r in complete]
            y = [float(r.value) for r in complete if r.value is not None]
            ax.scatter(x, y, s=18, label="trial", zorder=3)
            running = np.maximum.accumulate(y)
            ax.step(x, running, where="post", color="C1", label="best so far")
        pruned = [r for r in records if r.state == "PRUNED" and r.value is not None]
        if pruned:
            ax.scatter(
                [r.number for r in pruned], [float(r.value or 0.0) for r in pruned],
                s=18, marker="v", color="0.6", label="pruned (value when pruned)",
            )  # fmt: skip
        failed = [r for r in records if r.state == "FAIL" and r.finished]
        if failed and complete:
            low = min(float(r.value) for r in complete if r.value is not None)
            ax.scatter(
                [r.number for r in failed], [low] * len(failed), marker="x",
                color="C3", label="failed (diverged / no episode)",
            )  # fmt: skip
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers
        ax.set_xlabel("trial")
        ax.set_ylabel(self.settings.statistic)
        ax.set_title(f"search on {self.config.env_name}: {self.settings.statistic}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=110)
        plt.close(fig)
        return out.getvalue()


def _short(r: TrialRecord) -> str:
    if r.state == "COMPLETE" and r.value is not None:
        return f"#{r.number} {r.value:.2f}"
    if r.state == "PRUNED":
        value = "" if r.value is None else f", {r.value:.2f}"
        return f"#{r.number} {r.note}{value}"
    return f"#{r.number} failed ({r.note})"


def _pad(values: Sequence[Any], n: int) -> list[Any]:
    return [*values, *([None] * (n - len(values)))][:n]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value
