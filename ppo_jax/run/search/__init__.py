"""Hyperparameter search with Optuna: trials trained K at a time, vmapped in
one compile.

A search varies traceable fields (those in :class:`Hyperparams`: ``lr``,
``gamma``, ``clip_eps``, ...) of a base config. Every trial has the base
config's shapes, so one compiled program trains all of them: ``batch`` slots
of ``num_seeds`` runs each, ``R = batch * num_seeds`` runs vmapped, in chunks
of ``save_freq`` iterations. Run ``s`` of every trial trains with
``jax.random.key(seed + s)`` (the seeds of ``train --num-seeds S``), so every
trial sees the same seeds and a trial's runs are those of ``python -m
ppo_jax.train --config best_config.toml --num-seeds S`` (up to float
rounding).

Scheduling: Optuna is asked for a trial per free slot (``batch`` at first);
at each chunk boundary a trial that has run all its iterations (or diverged,
or was pruned) is told to the study and its slot takes the next trial, whose
runs are initialized anew inside the same compiled program. Without pruning
every slot finishes at the same boundary, so the search runs in batches of
``batch`` trials.

Objective: a statistic of each trial's training returns (``mean_return`` per
iteration, NaN where no episode ended, left out), one of :data:`STATISTICS`;
it is maximized.

The run directory holds the study in ``study.db`` (Optuna's own SQLite
storage: ``optuna.load_study(study_name="ppo_jax", storage="sqlite:///DIR/study.db")``),
the settings (``search.json``), the base config and the space as files the
commands read (``base_config.json``, ``space.json``) and, rewritten after
every finished group of trials, ``trials.csv``, ``trials.md`` and
``best_config.toml`` (a config file ``train --config`` accepts); ``search.png``
at most every 30 s and at the end. A killed search resumes: trials it left
running count as failed (not finished) and new trials replace them; finished
trials are kept and never trained again.

Pruning (``prune=True``): each trial reports the statistic of its iterations
so far at chunk boundaries past the first quarter of the run, and Optuna's
percentile pruner stops a trial in the lowest quarter of the finished trials
at the same iteration (once 5 trials, or ``batch``, have finished). A pruned
trial frees its slot for the next trial at once, so the compute it would have
taken goes to new trials instead of idling in the vmapped program.

The package, one module per concept:

- :mod:`~ppo_jax.run.search.objectives`: the statistics a search maximizes;
- :mod:`~ppo_jax.run.search.space`: the searched fields (``--param``, space
  files) and their checks;
- :mod:`~ppo_jax.run.search.settings`: what a search is (``search.json``) and
  the names of its run directory's files;
- :mod:`~ppo_jax.run.search.study`: the Optuna study, its trials as records,
  the result;
- :mod:`~ppo_jax.run.search.engine`: :func:`run_search`, :func:`resume_search`
  and the loop of slots in one compiled program;
- :mod:`~ppo_jax.run.search.report`: the printed lines, the tables, the best
  config and the plot.
"""

from ppo_jax.run.search.engine import resume_search, run_search
from ppo_jax.run.search.objectives import (
    STATISTICS,
    Statistic,
    final_window,
    get_statistic,
    seed_final_returns,
    seed_mean_returns,
)
from ppo_jax.run.search.settings import SearchSettings, default_run_dir, load_settings
from ppo_jax.run.search.space import (
    Choice,
    EmptySpaceError,
    Param,
    SearchSpace,
    check_space,
    parse_param,
    read_space_file,
    space_from_dict,
    space_to_dict,
)
from ppo_jax.run.search.study import SearchResult, TrialRecord, require_optuna

__all__ = [
    "STATISTICS",
    "Choice",
    "EmptySpaceError",
    "Param",
    "SearchResult",
    "SearchSettings",
    "SearchSpace",
    "Statistic",
    "TrialRecord",
    "check_space",
    "default_run_dir",
    "final_window",
    "get_statistic",
    "load_settings",
    "parse_param",
    "read_space_file",
    "require_optuna",
    "resume_search",
    "run_search",
    "seed_final_returns",
    "seed_mean_returns",
    "space_from_dict",
    "space_to_dict",
]
