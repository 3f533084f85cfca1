"""ppo_jax.run.statistics: IQM and its stratified bootstrap interval, against hand
arithmetic, scipy and a plain-Python reference."""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from ppo_jax.run.statistics import (
    Summary,
    format_summary,
    iqm,
    stratified_bootstrap_ci,
    summarize,
)


def test_iqm_by_hand():
    # 8 scores, sorted: 1 2 3 4 5 6 7 100. int(0.25 * 8) = 2 dropped from each
    # end (1, 2 and 7, 100); the middle four: (3 + 4 + 5 + 6) / 4 = 18 / 4 = 4.5.
    assert iqm([7, 1, 100, 3, 5, 2, 6, 4]) == 4.5
    # 7 scores: int(0.25 * 7) = int(1.75) = 1 dropped from each end (0 and 60):
    # (10 + 20 + 30 + 40 + 50) / 5 = 150 / 5 = 30.
    assert iqm([60, 0, 10, 20, 30, 40, 50]) == 30.0
    # 3 scores: int(0.75) = 0, nothing dropped: (1 + 2 + 9) / 3 = 4.
    assert iqm([9, 1, 2]) == 4.0
    # 4 scores: 1 dropped each end: (2 + 3) / 2 = 2.5.
    assert iqm([1, 2, 3, 1000]) == 2.5
    # A [runs, tasks] matrix is pooled: the same 8 scores as above.
    assert iqm(np.array([[7, 1], [100, 3], [5, 2], [6, 4]])) == 4.5


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17, 100, 1001])
def test_iqm_is_scipys_trim_mean(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * 50 - 100
    assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)
    m = rng.standard_normal((n, 3))
    assert iqm(m) == pytest.approx(stats.trim_mean(m, 0.25, axis=None), rel=1e-12)


def test_iqm_drops_nan_and_empty_is_nan():
    assert iqm([np.nan, 7, 1, 100, 3, np.nan, 5, 2, 6, 4]) == 4.5
    assert math.isnan(iqm([]))
    assert math.isnan(iqm([np.nan, np.nan]))
    assert iqm([1.0, 2.0, 3.0, np.inf]) == 2.5  # inf is a score: trimmed here


# ------------------------------------------------------------- the bootstrap
def reference_ci(columns, reps, confidence, seed):
    """A plain-Python stratified bootstrap of the IQM with the documented
    draws: per task, in order, rng.integers(0, n_j, size=(reps, n_j))."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(c), size=(reps, len(c))).tolist() for c in columns]
    values = []
    for r in range(reps):
        sample = [c[i] for c, d in zip(columns, draws, strict=True) for i in d[r]]
        sample.sort()
        k = len(sample) // 4
        middle = sample[k : len(sample) - k]
        values.append(sum(middle) / len(middle))
    values.sort()

    def percentile(q):  # linear interpolation between order statistics
        h = (len(values) - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (h - lo) * (values[hi] - values[lo])

    tail = (1 - confidence) / 2
    return percentile(tail), percentile(1 - tail)


def test_bootstrap_matches_a_plain_python_reference():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(6, 3)) * [1, 10, 100]
    columns = [scores[:, j].tolist() for j in range(3)]
    for reps, confidence, seed in [(300, 0.95, 0), (301, 0.9, 7), (1, 0.5, 3)]:
        got = stratified_bootstrap_ci(
            scores, reps=reps, confidence=confidence, seed=seed
        )
        want = reference_ci(columns, reps, confidence, seed)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bootstrap_any_statistic_and_the_fast_iqm_agree():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(9, 2))
    fast = stratified_bootstrap_ci(scores, reps=500, seed=4)
    slow = stratified_bootstrap_ci(scores, lambda s: iqm(s), reps=500, seed=4)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    low, high = stratified_bootstrap_ci(scores, np.median, reps=500, seed=4)
    assert low <= np.median(scores) <= high


def test_bootstrap_keeps_each_tasks_count():
    # Task 0 scores are all 0, task 1 all 1, 4 runs each. Resampling within a
    # task always draws 4 zeros and 4 ones, so every resample's mean is exactly
    # 0.5 and the interval collapses. (Pooled resampling would spread it.)
    scores = np.array([[0.0, 1.0]] * 4)
    assert stratified_bootstrap_ci(scores, np.mean, reps=200) == (0.5, 0.5)
    seen = []

    def record(sample):
        seen.append(sample.copy())
        return 0.0

    # NaN dropped per task: task 0 keeps 3 runs, task 1 keeps 2; task 2 has
    # none and is left out.
    ragged = np.array([[1.0, 10.0, np.nan], [2.0, np.nan, np.nan], [3.0, 20.0, np.nan]])
    stratified_bootstrap_ci(ragged, record, reps=50)
    assert len(seen) == 50
    for sample in seen:
        assert sample.shape == (5,)
        assert set(sample[:3]) <= {1.0, 2.0, 3.0}
        assert set(sample[3:]) <= {10.0, 20.0}


def test_bootstrap_collapses_on_equal_values_and_single_runs():
    assert stratified_bootstrap_ci([3.5] * 10) == (3.5, 3.5)
    assert stratified_bootstrap_ci([[2.0, -1.0, 7.0]]) == (iqm([2.0, -1.0, 7.0]),) * 2


def test_bootstrap_is_deterministic_given_a_seed():
    x = np.random.default_rng(5).normal(size=12)
    assert stratified_bootstrap_ci(x, seed=3) == stratified_bootstrap_ci(x, seed=3)
    assert stratified_bootstrap_ci(x, seed=3) != stratified_bootstrap_ci(x, seed=4)


@pytest.mark.parametrize("n", [2, 5, 8, 30])
def test_interval_contains_the_samples_iqm(n):
    for seed in range(5):
        x = np.random.default_rng(seed).standard_cauchy(n)
        low, high = stratified_bootstrap_ci(x, seed=seed)
        assert low <= iqm(x) <= high
        wide = stratified_bootstrap_ci(x, confidence=0.99, seed=seed)
        assert wide[0] <= low and high <= wide[1]


def test_bootstrap_nan_and_empty():
    assert all(math.isnan(v) for v in stratified_bootstrap_ci([]))
    assert all(math.isnan(v) for v in stratified_bootstrap_ci([np.nan] * 3))
    assert all(math.isnan(v) for v in stratified_bootstrap_ci(np.empty((0, 3))))
    x = [1.0, 5.0, np.nan, 3.0, 2.0]
    assert stratified_bootstrap_ci(x, seed=1) == stratified_bootstrap_ci(
        [1.0, 5.0, 3.0, 2.0], seed=1
    )


def test_bootstrap_refuses_bad_arguments():
    with pytest.raises(ValueError, match="reps"):
        stratified_bootstrap_ci([1.0, 2.0], reps=0)
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="runs"):
        stratified_bootstrap_ci(np.zeros((2, 2, 2)))


# --------------------------------------------------------------- the summary
def test_summary_and_its_line():
    values = [-150.0, -140.0, -160.0, -155.0, np.nan, -145.0, -300.0, -152.0, -149.0]
    s = summarize(values)
    finite = [v for v in values if not math.isnan(v)]
    assert s.n == 8
    assert s.mean == pytest.approx(np.mean(finite))
    assert s.std == pytest.approx(np.std(finite))
    assert s.iqm == iqm(finite)
    assert (s.ci_low, s.ci_high) == stratified_bootstrap_ci(finite)
    assert s.ci_low <= s.iqm <= s.ci_high
    line = format_summary(s)
    assert line == (
        f"{s.iqm:.1f} [{s.ci_low:.1f}, {s.ci_high:.1f}] (IQM, 95% CI); "
        f"mean {s.mean:.1f} ± {s.std:.1f}, n=8"
    )
    fixed = Summary(8, -160.0, 20.1, -152.1, -180.3, -140.2)
    assert format_summary(fixed) == (
        "-152.1 [-180.3, -140.2] (IQM, 95% CI); mean -160.0 ± 20.1, n=8"
    )
    assert "(IQM, 90% CI)" in format_summary(summarize(finite, confidence=0.9))


def test_summary_of_nothing():
    s = summarize([np.nan, np.nan])
    assert s.n == 0 and all(math.isnan(v) for v in s[1:6])
    assert format_summary(s) == "no scores (n=0)"
    assert summarize([]).n == 0


def test_module_imports_no_jax():
    code = "import sys, ppo_jax.run.statistics; print('jax' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
