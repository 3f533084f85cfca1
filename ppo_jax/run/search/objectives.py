"""A search's objective: a statistic of each trial's training returns.

A trial's returns are ``[seeds, iterations]`` ``mean_return`` values (NaN
where no episode ended, left out); a :class:`Statistic` reduces each seed's
row to a value, then the seeds' values to one. :data:`STATISTICS` names the
ones a search offers (``--statistic``); the search maximizes it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ppo_jax.config.schema import ConfigError

FINAL_FRACTION = 0.1  # the last 10% of the iterations: a trial's "final" return


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean of the finite entries (NaN where there are none), no warnings."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    total = np.where(finite, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def final_window(iterations: int) -> int:
    """How many last iterations a trial's final return averages: 10% of them
    (rounded up), at least one."""
    return max(1, math.ceil(FINAL_FRACTION * iterations))


def seed_final_returns(returns: np.ndarray) -> np.ndarray:
    """``[seeds]``: each seed's mean return over the last 10% of iterations."""
    returns = np.asarray(returns, np.float64)
    return _nanmean(returns[:, -final_window(returns.shape[1]) :], axis=1)


def seed_mean_returns(returns: np.ndarray) -> np.ndarray:
    """``[seeds]``: each seed's mean return over all iterations."""
    return _nanmean(np.asarray(returns, np.float64), axis=1)


def _mean(values: np.ndarray) -> float:
    return float(_nanmean(values))


def _lowest(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.size else math.nan


@dataclasses.dataclass(frozen=True)
class Statistic:
    """A trial's objective from its ``[seeds, iterations]`` training returns
    (NaN: no episode ended; left out): a value per seed, then one over seeds."""

    name: str
    per_seed: Callable[[np.ndarray], np.ndarray]
    combine: Callable[[np.ndarray], float]
    description: str

    def __call__(self, returns: np.ndarray) -> float:
        return self.combine(self.per_seed(returns))

    def stated(self, iterations: int) -> str:
        """The statistic in words, for runs of ``iterations`` iterations."""
        window = ""
        if self.per_seed is seed_final_returns:
            window = f" (the last {final_window(iterations)} of {iterations})"
        return (
            f"{self.name}: {self.description}{window}; iterations in which no "
            "episode ended are left out"
        )


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic(
            "final_return",
            seed_final_returns,
            _mean,
            "the mean over the trial's seeds of each seed's mean training "
            "return over the last 10% of iterations",
        ),
        Statistic(
            "auc",
            seed_mean_returns,
            _mean,
            "the mean over the trial's seeds of each seed's mean training "
            "return over all iterations (the area under the learning curve)",
        ),
        Statistic(
            "worst_seed_final",
            seed_final_returns,
            _lowest,
            "the lowest, over the trial's seeds, of each seed's mean training "
            "return over the last 10% of iterations",
        ),
    )
}


def get_statistic(name: str) -> Statistic:
    if name not in STATISTICS:
        raise ConfigError("statistic", name, f"one of {', '.join(STATISTICS)}")
    return STATISTICS[name]
