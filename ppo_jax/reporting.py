"""Host-side output of a run: metrics CSV, progress lines, learning curve."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ppo_jax.train import Metrics

METRICS_FILE = "metrics.csv"
PLOT_FILE = "learning_curve.png"
COLUMNS = (*Metrics._fields, "seconds")


def metrics_rows(metrics, keep: int, seconds_per_iteration: float) -> list[dict]:
    """Turn a chunk's host-side Metrics (leaves ``[chunk]``) into CSV rows.

    Only the first ``keep`` iterations are real (the rest ran past the end of
    the run and left the state unchanged).
    """
    m = {k: np.asarray(v)[:keep] for k, v in metrics._asdict().items()}
    rows = []
    for i in range(keep):
        row = {k: m[k][i].item() for k in m}
        row["all_finite"] = int(row["all_finite"])
        row["seconds"] = seconds_per_iteration
        rows.append(row)
    return rows


class MetricsWriter:
    """Appends rows to ``metrics.csv``, flushing after every chunk."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / METRICS_FILE
        self._file = open(self.path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        self._file.flush()

    def write(self, rows: list[dict]) -> None:
        self._writer.writerows(rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    with open(Path(run_dir) / METRICS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in COLUMNS}


def format_iteration(row: dict) -> str:
    """The tutorial's per-iteration summary, on one line."""
    return (
        f"iteration {row['iteration']:>5} | "
        f"avg episodic length {row['mean_length']:7.1f} | "
        f"avg episodic return {row['mean_return']:10.2f} | "
        f"avg loss {row['actor_loss']:+.5f} | "
        f"timesteps {row['timesteps']:>10,} | "
        f"{row['seconds']:.3f} s/iteration"
    )


def recent_mean_return(rows: list[dict], last: int = 10) -> float:
    """Mean return of the episodes that ended in the last ``last`` iterations."""
    recent = [r for r in rows[-last:] if r["num_episodes"] > 0]
    count = sum(r["num_episodes"] for r in recent)
    if count == 0:
        return math.nan
    return sum(r["mean_return"] * r["num_episodes"] for r in recent) / count


def plot_learning_curve(run_dir: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(m["timesteps"], m["mean_return"], lw=1.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episodic return (episodes ended per iteration)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(run_dir) / PLOT_FILE
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
