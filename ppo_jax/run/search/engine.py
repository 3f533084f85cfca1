"""The search itself: :func:`run_search` and :func:`resume_search`, and the
loop that trains ``batch`` trials at a time in one compiled program.

Each trial holds a slot of ``num_seeds`` vmapped runs. At each chunk boundary
(``save_freq`` iterations) a trial that has run all its iterations, diverged
or was pruned is told to the study, and its slot takes the next trial, whose
runs are initialized anew inside the same compiled program (:func:`_select`
keeps the other slots' runs).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.algo.ppo import Pipeline, RunnerState, build_pipeline
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.config.runspec import RunSpec
from ppo_jax.config.schema import ConfigError
from ppo_jax.run import rundir
from ppo_jax.run.experiment import Experiment, run_axis
from ppo_jax.run.host_loop import CompileProgress
from ppo_jax.run.resources import check_memory
from ppo_jax.run.search.objectives import STATISTICS
from ppo_jax.run.search.report import SearchReport
from ppo_jax.run.search.settings import (
    SETTINGS_FILE,
    STUDY_FILE,
    SearchSettings,
    default_run_dir,
    load_settings,
    save_settings,
)
from ppo_jax.run.search.space import Choice, Param, space_from_dict
from ppo_jax.run.search.study import (
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    SearchResult,
    TrialRecord,
    best_record,
    open_study,
    require_optuna,
    study_records,
    warmup_iterations,
)
from ppo_jax.run.signals import GracefulStop, signals_deferred

if TYPE_CHECKING:
    import optuna

MAX_REFUSED = 100  # sampled configs in a row the config refuses: give up


def run_search(
    config: PPOConfig,
    space: Iterable[Param] | Mapping[str, Any],
    *,
    trials: int,
    batch: int = 4,
    num_seeds: int = 1,
    statistic: str = "final_return",
    run_dir: str | Path | None = None,
    resume: bool = False,
    prune: bool = False,
    quiet: bool = False,
) -> SearchResult:
    """Search ``space`` around ``config``: finish ``trials`` trials of
    ``num_seeds`` seeds each, ``batch`` trials at a time vmapped in one
    compile, maximizing ``statistic`` (a name in :data:`STATISTICS`).

    ``space``: :class:`Param` s, or a mapping as a space file holds it
    (``{"lr": {"low": 1e-4, "high": 3e-3, "log": True}, "ent_coef":
    {"choices": [0.0, 0.01]}}``). ``run_dir`` (default
    ``runs/tune-ENV-DATE-TIME``) must hold no search, unless ``resume``: then a
    search there continues if it has the same config, space, seeds and
    statistic (another is refused), ``trials`` being the total to finish.

    Returns a :class:`SearchResult` (``exit_code`` 130 if Ctrl-C or SIGTERM
    stopped it: the trials in training are then marked failed). Raises
    ConfigError, RunDirError or ResourceError (one sentence) for bad input,
    and ImportError without Optuna, all before anything compiles.
    """
    optuna = require_optuna()
    if isinstance(space, Mapping):
        space = space_from_dict(space)
    settings = SearchSettings(
        config, tuple(space), trials, batch, num_seeds, statistic, prune
    ).validate()
    pipeline = build_pipeline(settings.config)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config.env_name)
    rundir.check_not_a_file(run_dir)
    if (run_dir / SETTINGS_FILE).exists():
        if not resume:
            raise rundir.RunDirError(
                f"run directory {str(run_dir)!r} already holds a search; continue "
                f"it with --resume {run_dir} or choose another --run-dir"
            )
        stored = load_settings(run_dir)
        difference = stored.mismatch(settings)
        if difference is not None:
            raise rundir.RunDirError(
                f"run directory {str(run_dir)!r} holds another search ({difference}): "
                f"continue it with --resume {run_dir} alone, or choose another "
                "--run-dir"
            )
    elif (run_dir / STUDY_FILE).exists():
        raise rundir.RunDirError(
            f"run directory {str(run_dir)!r} holds a {STUDY_FILE} but no "
            f"{SETTINGS_FILE}: not a ppo_jax search; choose another --run-dir"
        )
    with GracefulStop() as stop:
        stop.check()
        with rundir.RunLock(run_dir):
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise rundir.RunDirError(
                    f"run directory {str(run_dir)!r} cannot be created "
                    f"({e.strerror or type(e).__name__})"
                ) from e
            rundir.check_writable(run_dir)
            return _Search(optuna, settings, pipeline, run_dir, stop, quiet).run()


def resume_search(
    run_dir: str | Path,
    *,
    trials: int | None = None,
    batch: int | None = None,
    prune: bool | None = None,
    quiet: bool = False,
) -> SearchResult:
    """Continue the search in ``run_dir`` with its own settings; ``trials``
    (a new total), ``batch`` and ``prune`` may change."""
    require_optuna()
    run_dir = Path(run_dir)
    stored = load_settings(run_dir)
    return run_search(
        stored.config,
        stored.space,
        trials=stored.trials if trials is None else trials,
        batch=stored.batch if batch is None else batch,
        num_seeds=stored.num_seeds,
        statistic=stored.statistic,
        run_dir=run_dir,
        resume=True,
        prune=stored.prune if prune is None else prune,
        quiet=quiet,
    )


@dataclasses.dataclass
class _Slot:
    """A trial in training: ``num_seeds`` of the vmapped runs."""

    trial: optuna.Trial
    params: dict[str, Choice]
    returns: list[np.ndarray] = dataclasses.field(default_factory=list)
    iterations: int = 0  # completed
    diverged_at: int | None = None
    pruned_at: int | None = None

    def add(self, mean_return: np.ndarray, finite: np.ndarray, it: np.ndarray) -> None:
        """A chunk's rows of this trial's runs: ``[seeds, chunk]`` returns and
        finiteness, ``[chunk]`` iteration numbers (0: past the run's end)."""
        valid = it > 0
        if not valid.any():
            return
        ok = finite[:, valid].all(axis=0)
        if not ok.all() and self.diverged_at is None:
            self.diverged_at = int(it[valid][np.argmin(ok)])
        self.returns.append(np.asarray(mean_return[:, valid], np.float64))
        self.iterations = int(it[valid][-1])

    def curve(self) -> np.ndarray:
        return np.concatenate(self.returns, axis=1)


class _Search:
    """One process's part of a search: the study, the compiled program and
    the slots."""

    def __init__(
        self,
        optuna_module: ModuleType,
        settings: SearchSettings,
        pipeline: Pipeline,
        run_dir: Path,
        stop: GracefulStop,
        quiet: bool,
    ):
        self.optuna = optuna_module
        self.settings = settings
        self.config = settings.config
        self.pipeline = pipeline
        self.run_dir = run_dir
        self.stop = stop
        self.quiet = quiet
        self.statistic = STATISTICS[settings.statistic]
        self.report = SearchReport(settings, run_dir)
        self.start = time.perf_counter()
        self.compile_s = 0.0
        self.problem = ""  # what stopped the search (a failed write)
        self.abandoned: list[int] = []  # trials marked failed by a stop
        self.study: optuna.Study  # set by run()

    # ------------------------------------------------------------- the study
    def records(self) -> list[TrialRecord]:
        return study_records(self.study)

    def _ask(self) -> tuple[optuna.Trial, dict[str, Choice]]:
        """A new trial and its params; a combination the config refuses (a
        rule between fields, e.g. lr within [lr_min, lr_max]) is told failed
        and replaced."""
        for _ in range(MAX_REFUSED):
            trial = self.study.ask()
            params = {p.name: p.suggest(trial) for p in self.settings.space}
            try:
                self.config.replace(**params).validate()
                return trial, params
            except ConfigError as e:
                trial.set_user_attr("refused", str(e))
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        raise ConfigError(
            "param", " ".join(p.text() for p in self.settings.space),
            f"a space whose samples the config accepts ({MAX_REFUSED} in a row "
            "were refused)",
        )  # fmt: skip

    # ------------------------------------------------------------------- run
    # ------------------------------------------------------------------- run
    def run(self) -> SearchResult:
        s = self.settings
        # The settings first (with this start's trials, batch and prune): a
        # study.db never exists without them.
        save_settings(s, self.run_dir)
        self.study, interrupted = open_study(self.optuna, s, self.run_dir)
        finished = sum(r.finished for r in self.records())
        remaining = max(0, s.trials - finished)
        self.report.header(finished, interrupted, remaining)
        exit_code = 0
        if remaining:
            exit_code = self._train(min(s.batch, remaining), s.trials)
        return self._finish(exit_code)

    def _train(self, slots: int, target: int) -> int:
        """Train trials until ``target`` are finished; returns the exit code."""
        s, config = self.settings, self.config
        S = s.num_seeds
        R = slots * S
        check_memory(self.pipeline, R)
        chunk_len = min(config.save_freq, config.num_iterations)
        experiment = Experiment(
            RunSpec(config.replace(seed=0), R), self.pipeline, chunk_len
        )
        runs = f", {R} runs" if R > 1 else ""
        with CompileProgress(f"{chunk_len} iterations per call{runs}") as progress:
            init, run_chunk = experiment.compile(progress.stage)
        self.compile_s = progress.total_s
        print(
            f"compiled in {progress.total_s:.2f} s ({progress.breakdown()}): "
            f"{slots} trial(s) x {S} seed(s) vmapped",
            flush=True,
        )
        batched = R > 1
        keys = jnp.stack([jax.random.key(config.seed + r % S) for r in range(R)])
        hps: list[Hyperparams] = [config.hyperparams()] * slots
        active: list[_Slot | None] = [None] * slots
        runner: RunnerState | None = None
        hp = config.hyperparams()  # every chunk's, [R] when batched
        select = jax.jit(_select)
        finished = sum(r.finished for r in self.records())
        line_start = time.perf_counter()
        total = config.num_iterations
        while True:
            if self.stop.requested:
                return self._abandon(active)
            # Fill the free slots with new trials while more are needed.
            in_training = sum(slot is not None for slot in active)
            fresh = np.zeros(slots, bool)
            for i in range(slots):
                if active[i] is None and finished + in_training < target:
                    trial, params = self._ask()
                    active[i] = _Slot(trial, params)
                    hps[i] = config.replace(**params).hyperparams()
                    fresh[i] = True
                    in_training += 1
            if in_training == 0:
                return 0
            if fresh.any():
                hp = _stack([hps[i] for i in range(slots) for _ in range(S)], batched)
                new = init(keys if batched else keys[0], hp)
                if runner is None or fresh.all():
                    runner = new
                else:
                    mask = jnp.asarray(np.repeat(fresh, S))
                    runner = select(mask, new, runner)
                    if experiment.mesh is not None:
                        runner = experiment.place(runner)
            assert runner is not None
            runner, metrics = run_chunk(runner, hp)
            m = run_axis(jax.device_get(metrics), batched)
            done: list[int] = []
            for i, slot in enumerate(active):
                if slot is None:
                    continue
                rows = slice(i * S, (i + 1) * S)
                slot.add(
                    np.asarray(m.mean_return[rows]),
                    np.asarray(m.all_finite[rows]),
                    np.asarray(m.iteration[i * S]),
                )
                if slot.diverged_at is not None or slot.iterations >= total:
                    done.append(i)
                elif s.prune and self._pruned(slot):
                    done.append(i)
            if not done:
                continue
            told = []
            try:
                with signals_deferred():  # a trial told, then the files that show it
                    for i in done:
                        slot = active[i]
                        assert slot is not None
                        told.append(self._tell(slot))
                        active[i] = None
                    records = self.records()
                    finished = sum(r.finished for r in records)
                    self.report.write(records)
            except rundir.RunDirError as e:
                self.problem = str(e)
                return self._abandon(active, EXIT_WRITE_FAILED)
            if not self.quiet:
                self.report.progress(records, told, time.perf_counter() - line_start)
            line_start = time.perf_counter()

    def _pruned(self, slot: _Slot) -> bool:
        """Report the trial's statistic so far (past the warm-up); True if
        the pruner stops it."""
        if slot.iterations < warmup_iterations(self.config):
            return False
        value = self.statistic(slot.curve())
        if not math.isfinite(value):
            return False
        slot.trial.report(value, slot.iterations)
        if slot.trial.should_prune():
            slot.pruned_at = slot.iterations
            return True
        return False

    def _tell(self, slot: _Slot) -> int:
        """Tell the study how a trial ended; returns its number."""
        trial, states = slot.trial, self.optuna.trial.TrialState
        total = self.config.num_iterations
        if slot.diverged_at is not None:
            trial.set_user_attr(
                "failure", "diverged: non-finite loss or parameters at iteration "
                f"{slot.diverged_at} of {total}",
            )  # fmt: skip
            self.study.tell(trial, state=states.FAIL)
            return trial.number
        per_seed = self.statistic.per_seed(slot.curve())
        trial.set_user_attr(
            "seed_values", [float(v) if math.isfinite(v) else None for v in per_seed]
        )
        if slot.pruned_at is not None:
            # Optuna keeps the last reported value as a pruned trial's value.
            trial.set_user_attr(
                "pruned", f"pruned at iteration {slot.pruned_at} of {total}"
            )
            self.study.tell(trial, state=states.PRUNED)
            return trial.number
        value = self.statistic.combine(per_seed)
        if not math.isfinite(value):
            trial.set_user_attr(
                "failure", "no episode ended in the iterations the statistic reads"
            )
            self.study.tell(trial, state=states.FAIL)
        else:
            self.study.tell(trial, value)
        return trial.number

    def _abandon(self, active: list[_Slot | None], code: int = EXIT_INTERRUPTED) -> int:
        """Mark the trials in training failed (not finished: a resumed search
        replaces them); returns ``code``."""
        self.abandoned = [slot.trial.number for slot in active if slot is not None]
        for slot in active:
            if slot is not None:
                self.study.tell(slot.trial, state=self.optuna.trial.TrialState.FAIL)
        return code

    def _finish(self, exit_code: int) -> SearchResult:
        records = self.records()
        best = best_record(records)
        best_config = None if best is None else self.config.replace(**best.params)
        try:
            with signals_deferred():
                self.report.write(records, last=True)
        except rundir.RunDirError as e:
            if exit_code == 0:
                exit_code, self.problem = EXIT_WRITE_FAILED, str(e)
        seconds = time.perf_counter() - self.start
        result = SearchResult(
            self.run_dir, self.settings, tuple(records), best, best_config,
            exit_code, seconds, self.compile_s,
        )  # fmt: skip
        self.report.outcome(result, self.abandoned, self.problem)
        return result


def _stack(hps: list[Hyperparams], batched: bool) -> Hyperparams:
    if not batched:
        return hps[0]
    stacked: Hyperparams = jax.tree.map(lambda *x: jnp.stack(x), *hps)
    return stacked


def _select(mask: jax.Array, new: RunnerState, old: RunnerState) -> RunnerState:
    """Per run (the leading axis): ``new`` where ``mask``, else ``old``."""

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    selected: RunnerState = jax.tree.map(pick, new, old)
    return selected
