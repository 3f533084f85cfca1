"""Aggregate scores with confidence: interquartile mean and stratified bootstrap.

Following Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS 2021): report the interquartile mean (IQM) of
the runs' scores with a stratified bootstrap confidence interval, rather than a
mean ± std over a handful of seeds.

Shapes: ``scores`` is ``[runs, tasks]`` (one column per task, the stratum) or
1-D ``[runs]`` (one task).

NaN: every function here drops NaN scores (a run that ended no episode has a
NaN return) and counts only the rest; the bootstrap drops them task by task,
and a task left with no score is left out. Infinite scores are kept (they are
numbers: trimming may drop them). No scores at all: NaN results.

numpy only: this module imports no jax and no scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

Statistic = Callable[[np.ndarray], float]


def _cut(n: int) -> int:
    """How many scores the IQM drops from each end of ``n`` sorted scores:
    ``int(0.25 * n)``, the lower fraction rounded down (``n // 4``)."""
    return n // 4


def iqm(values: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle half of the scores.

    ``values``: any shape (a ``[runs, tasks]`` matrix is flattened: all scores
    pooled). NaN scores are dropped first. Of the ``n`` remaining scores,
    sorted, ``k = int(0.25 * n) = n // 4`` are dropped from each end and the
    mean of the other ``n - 2k`` is returned; this is
    ``scipy.stats.trim_mean(x, 0.25)`` (rliable's IQM). When ``n`` is not a
    multiple of 4 the fraction of a score is kept, not weighted: 8 scores drop
    2 + 2 and average 4; 7 scores drop 1 + 1 and average 5; fewer than 4
    scores drop nothing (the plain mean). No scores: NaN.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan
    k = _cut(n)
    return float(np.mean(np.sort(x)[k : n - k]))


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """:func:`iqm` of each row of ``samples`` ``[reps, n]`` (no NaN): ``[reps]``."""
    n = samples.shape[1]
    k = _cut(n)
    return np.sort(samples, axis=1)[:, k : n - k].mean(axis=1)


def _strata(scores: ArrayLike) -> list[np.ndarray]:
    """``[runs]`` or ``[runs, tasks]`` -> per task, its non-NaN scores ``[n_j]``
    (tasks left with none are left out)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"scores must be [runs] or [runs, tasks], not {x.shape}")
    columns = [x[:, j][~np.isnan(x[:, j])] for j in range(x.shape[1])]
    return [c for c in columns if c.size]


def stratified_bootstrap_ci(
    scores: ArrayLike,
    statistic: Statistic = iqm,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of ``statistic`` by stratified bootstrap.

    Args:
        scores: ``[runs, tasks]``, or ``[runs]`` for one task. NaN scores are
            dropped task by task (tasks may then hold different numbers of
            runs); a task with none left is left out.
        statistic: called on each resample, a 1-D array ``[N]`` of the
            resampled scores of every task concatenated (task 0's first),
            returns a float. :func:`iqm` (the default), ``np.mean`` and
            ``np.median`` all fit.
        reps: number of bootstrap resamples (>= 1).
        confidence: the interval's coverage, in (0, 1).
        seed: seed of the ``numpy.random.Generator`` (``default_rng(seed)``):
            the same seed and input give the same interval.

    Each resample draws, for every task (stratum) independently, as many runs
    as it has, with replacement, from that task's runs alone; so every
    resample keeps each task's count. The draws are made task by task, one
    ``rng.integers(0, n_j, size=(reps, n_j))`` per task, in task order (row
    ``r`` is resample ``r``'s draw for that task). The interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the
    ``reps`` statistics, by ``np.percentile`` (linear interpolation).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no score is left. With one run per
        task every resample is the sample itself: the interval collapses to
        the statistic.
    """
    if int(reps) != reps or reps < 1:
        raise ValueError(f"reps must be an integer >= 1, not {reps!r}")
    reps = int(reps)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")
    strata = _strata(scores)
    if not strata:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    resampled = [
        task[rng.integers(0, task.size, size=(reps, task.size))] for task in strata
    ]
    samples = np.concatenate(resampled, axis=1)  # [reps, N]
    if statistic is iqm:
        stats = _iqm_rows(samples)  # the same numbers, without a Python loop
    else:
        stats = np.array([statistic(sample) for sample in samples], np.float64)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


class Summary(NamedTuple):
    """Scores summarised: ``n`` non-NaN scores, their mean and std (population,
    ``ddof=0``), IQM and the IQM's stratified bootstrap interval at
    ``confidence``. NaN figures when ``n`` is 0."""

    n: int
    mean: float
    std: float
    iqm: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95


def summarize(
    values: ArrayLike,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Summary:
    """:class:`Summary` of ``values`` (``[runs]`` or ``[runs, tasks]``; NaN
    dropped). The interval is :func:`stratified_bootstrap_ci` of :func:`iqm`
    (tasks as strata) with these ``reps``, ``confidence`` and ``seed``."""
    x = np.asarray(values, dtype=np.float64)
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, confidence)
    low, high = stratified_bootstrap_ci(
        x, iqm, reps=reps, confidence=confidence, seed=seed
    )
    return Summary(
        n=int(finite.size),
        mean=float(np.mean(finite)),
        std=float(np.std(finite)),
        iqm=iqm(finite),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
    )


def format_iqm(s: Summary, digits: int = 1) -> str:
    """``"IQM [low, high]"``, e.g. ``"-152.1 [-180.3, -140.2]"``; ``"-"`` when
    ``n`` is 0."""
    if s.n == 0:
        return "-"
    return f"{s.iqm:.{digits}f} [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"


def format_mean_std(s: Summary, digits: int = 1) -> str:
    """``"mean ± std"``, e.g. ``"-160.0 ± 20.1"``; ``"-"`` when ``n`` is 0."""
    if s.n == 0:
        return "-"
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"


def format_summary(s: Summary, digits: int = 1) -> str:
    """One line, e.g.
    ``"-152.1 [-180.3, -140.2] (IQM, 95% CI); mean -160.0 ± 20.1, n=8"``;
    ``"no scores (n=0)"`` when there are none."""
    if s.n == 0:
        return "no scores (n=0)"
    return (
        f"{format_iqm(s, digits)} (IQM, {s.confidence * 100:g}% CI); "
        f"mean {format_mean_std(s, digits)}, n={s.n}"
    )
