"""A search's Optuna study: opening it in the run directory (its sampler and
pruner), its trials as :class:`TrialRecord` s, and what a search returns
(:class:`SearchResult`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.run import rundir
from ppo_jax.run.search.settings import STUDY_FILE, STUDY_NAME, SearchSettings
from ppo_jax.run.search.space import Choice

if TYPE_CHECKING:
    import optuna

PRUNE_PERCENTILE = 25.0  # prune trials in the lowest quarter at their iteration
PRUNE_STARTUP = 5  # finished trials before any pruning
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130
INSTALL_HINT = "pip install -e '.[tune]'"


def require_optuna() -> ModuleType:
    """The ``optuna`` module; ImportError with one sentence if it is missing."""
    try:
        import optuna
    except ImportError as e:
        raise ImportError(
            f"the search needs Optuna, which is not installed: {INSTALL_HINT} "
            "(or pip install optuna)"
        ) from e
    return optuna


def storage_url(run_dir: Path) -> str:
    """The SQLite URL of the study in ``run_dir``."""
    return f"sqlite:///{(Path(run_dir) / STUDY_FILE).resolve()}"


def open_study(
    optuna_module: ModuleType, settings: SearchSettings, run_dir: Path
) -> tuple[optuna.Study, list[int]]:
    """Create or load the study in ``run_dir``; trials a killed process left
    running are marked failed. Returns the study and those trials' numbers."""
    optuna = optuna_module
    s = settings
    try:
        storage = optuna.storages.RDBStorage(storage_url(run_dir))
        existing = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, direction="maximize",
            load_if_exists=True,
        )  # fmt: skip
    except Exception as e:  # SQLAlchemy's and Optuna's errors alike
        reason = " ".join(str(e).split())[:200]
        raise rundir.RunDirError(
            f"{str(run_dir / STUDY_FILE)!r} is not a usable Optuna study "
            f"({type(e).__name__}: {reason})"
        ) from e
    n = len(existing.trials)
    interrupted = []
    for t in existing.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
    ):
        # We hold the run directory's lock: no process trains it.
        existing.tell(t.number, state=optuna.trial.TrialState.FAIL)
        interrupted.append(t.number)
    # A sampler seeded anew by the trials so far: a resumed search draws
    # new points instead of repeating its first ones. The constant liar
    # (the default since Optuna 5; experimental in 4) keeps the trials
    # asked together, before any is told, apart.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=(s.config.seed + n) % 2**32,
            n_startup_trials=max(s.batch, min(10, s.trials // 2)),
            constant_liar=True,
        )
    pruner: Any = optuna.pruners.NopPruner()
    if s.prune:
        # The lowest quarter, not below the median: training returns are
        # noisy, and a trial behind at mid-run often ends ahead.
        pruner = optuna.pruners.PercentilePruner(
            PRUNE_PERCENTILE,
            n_startup_trials=max(PRUNE_STARTUP, s.batch),
            n_warmup_steps=warmup_iterations(s.config) - 1,
        )
    study = optuna.load_study(
        study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner
    )
    return study, interrupted


def warmup_iterations(config: PPOConfig) -> int:
    """Pruning looks at a trial from this iteration on (a quarter of the run)."""
    return max(1, config.num_iterations // 4)


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial of the study, as the tables show it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING
    value: float | None  # the statistic (a pruned trial: its last reported one)
    params: dict[str, Choice]
    seed_values: tuple[float | None, ...]  # the statistic's value per seed
    seconds: float | None
    note: str  # why it failed or was pruned; "interrupted" for abandoned ones

    @property
    def finished(self) -> bool:
        """Counted towards the search's trials: trained to the end (complete,
        or failed by divergence / no episode) or pruned; not an interrupted
        or refused one."""
        return self.state in ("COMPLETE", "PRUNED") or (
            self.state == "FAIL" and self.note.startswith(FAILED_PREFIXES)
        )


FAILED_PREFIXES = ("diverged", "no episode")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What :func:`run_search` did."""

    run_dir: Path
    settings: SearchSettings
    trials: tuple[TrialRecord, ...]  # every trial of the study, by number
    best: TrialRecord | None  # the complete trial with the highest value
    best_config: PPOConfig | None
    exit_code: int  # 0 done, 4 a write failed, 130 stopped by Ctrl-C/SIGTERM
    seconds: float
    compile_s: float

    @property
    def study_url(self) -> str:
        return storage_url(self.run_dir)

    @property
    def finished(self) -> int:
        return sum(t.finished for t in self.trials)


def study_records(study: optuna.Study) -> list[TrialRecord]:
    """Every trial of ``study``, by number."""
    return [trial_record(t) for t in study.get_trials(deepcopy=False)]


def trial_record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    """An Optuna trial as the tables show it (why it failed or was pruned
    from its user attributes)."""
    attrs = t.user_attrs
    state = t.state.name
    if state == "FAIL":
        note = str(attrs.get("failure") or "")
        if not note and "refused" in attrs:
            note = f"refused by the config: {attrs['refused']}"
        note = note or "interrupted (not counted: another trial replaces it)"
    elif state == "PRUNED":
        note = str(attrs.get("pruned", "pruned"))
    elif state == "RUNNING":
        note = "running"
    else:
        note = ""
    seconds = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialRecord(
        number=t.number,
        state=state,
        value=t.value if t.state.name in ("COMPLETE", "PRUNED") else None,
        params=dict(t.params),
        seed_values=tuple(attrs.get("seed_values", ())),
        seconds=seconds,
        note=note,
    )


def best_record(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The complete trial with the highest value (the first of equals)."""
    complete = [r for r in records if r.state == "COMPLETE" and r.value is not None]
    return max(complete, key=lambda r: (r.value, -r.number)) if complete else None
