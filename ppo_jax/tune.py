"""``python -m ppo_jax.tune``: a hyperparameter search with Optuna.

Varies traceable fields (``--param lr=1e-4:3e-3:log``, ``--param
ent_coef=0,0.01`` or a ``--space`` file) of a base config (``--preset``,
``--config`` and the config flags, as for ``train``), ``--batch`` trials at a
time vmapped in one compile, ``--num-seeds`` seeds each, and writes the study
(``study.db``), the trials' table and plot and ``best_config.toml`` into the run
directory. The search itself is :func:`ppo_jax.run.search.run_search`. Exit
codes: 0 done, 2 bad input (one sentence, before anything compiles), 4 a write
failed, 130 stopped by Ctrl-C or SIGTERM (``--resume RUN_DIR`` continues).

Heavy imports (jax, optuna) happen inside :func:`main`, after the signal
handling of :func:`ppo_jax._cli.entry_point` is in place.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ppo_jax import _cli

if TYPE_CHECKING:
    from types import ModuleType

    from ppo_jax.config.ppo_config import PPOConfig
    from ppo_jax.run.search import SearchSpace

STATISTIC_NAMES = ("final_return", "auc", "worst_seed_final")
DEFAULT_TRIALS = 16
DEFAULT_BATCH = 4
DEFAULT_SEEDS = 2


def build_parser() -> argparse.ArgumentParser:
    p = _cli.OneLineParser(
        prog="python -m ppo_jax.tune",
        description="Search hyperparameters with Optuna: trials of a base config "
        "that differ in traceable fields, several at a time in one compile.",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="FIELD=SPEC",
        help="a traceable field to search: SPEC is a range LOW:HIGH (uniform, "
        "or log-uniform with LOW:HIGH:log) or choices V1,V2,... (none among "
        "them for max_grad_norm, target_kl); "
        "repeatable; overrides the --space file's entry for the field",
    )
    p.add_argument(
        "--space",
        default=None,
        metavar="FILE",
        help="the fields to search from a TOML, JSON or YAML file: FIELD = "
        "{low = L, high = H, log = true} or {choices = [V1, V2]} (a search's "
        "space.json is one)",
    )
    p.add_argument(
        "--trials",
        type=_cli.positive_int,
        default=None,
        help=f"trials to finish, in all (default {DEFAULT_TRIALS}; with --resume: "
        "the search's own, or a new total)",
    )
    p.add_argument(
        "--batch",
        type=_cli.positive_int,
        default=None,
        help=f"trials trained at a time, vmapped in one compile (default "
        f"{DEFAULT_BATCH}; with --resume: the search's own)",
    )
    p.add_argument(
        "--num-seeds",
        type=_cli.positive_int,
        default=None,
        help=f"seeds per trial: SEED, SEED+1, ... (default {DEFAULT_SEEDS})",
    )
    p.add_argument(
        "--statistic",
        choices=STATISTIC_NAMES,
        default=None,
        help="the objective, maximized: final_return (default; the mean over "
        "seeds of the mean training return over the last 10%% of iterations), "
        "auc (over all iterations), worst_seed_final (the lowest seed's final "
        "return)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        default=None,
        help="stop a trial whose statistic so far is in the lowest quarter of "
        "the finished trials' at the same iteration (from a quarter of the run "
        "on); its slot takes a new trial at once",
    )
    _cli.add_preset_flags(
        p,
        preset_help="the base config's preset",
        config_help="base config fields from a YAML, TOML or JSON file",
    )
    _cli.add_config_flags(p)
    _cli.add_run_dir_flags(
        p,
        resume_help="continue a stopped or killed search with its own settings "
        "(--trials, --batch, --prune and --quiet may be given)",
        run_dir_help="output directory of a new search (default: "
        "runs/tune-ENV-DATE-TIME)",
    )
    p.add_argument("--quiet", action="store_true", help="no line per finished trials")
    return p


def main(argv: list[str] | None = None) -> int:
    return _cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ppo_jax.run import search

    try:
        optuna = search.require_optuna()
    except ImportError as e:
        return _cli.fail(str(e))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.resume is not None:
        defining = _cli.given_fields(args) or args.preset or args.config
        defining = defining or args.param or args.space or args.run_dir
        if defining or args.num_seeds is not None or args.statistic is not None:
            return _cli.fail(
                "--resume continues a search with its own settings: give no config "
                "flag, --preset, --config, --param, --space, --num-seeds, "
                "--statistic or --run-dir with it (--trials, --batch, --prune and "
                "--quiet may change)"
            )
        settings = search.load_settings(Path(args.resume))
        settings = search.SearchSettings(
            settings.config,
            settings.space,
            settings.trials if args.trials is None else args.trials,
            settings.batch if args.batch is None else args.batch,
            settings.num_seeds,
            settings.statistic,
            settings.prune if args.prune is None else args.prune,
        )
        run_dir: Path | None = Path(args.resume)
    else:
        settings = search.SearchSettings(
            _base_config(args),
            _space(args, search),
            args.trials or DEFAULT_TRIALS,
            args.batch or DEFAULT_BATCH,
            args.num_seeds or DEFAULT_SEEDS,
            args.statistic or "final_return",
            bool(args.prune),
        )
        run_dir = None if args.run_dir is None else Path(args.run_dir)
    settings.validate()  # before the cache folder is touched
    _cli.enable_compilation_cache()
    result = search.run_search(
        settings.config,
        settings.space,
        trials=settings.trials,
        batch=settings.batch,
        num_seeds=settings.num_seeds,
        statistic=settings.statistic,
        run_dir=run_dir,
        resume=args.resume is not None,
        prune=settings.prune,
        quiet=args.quiet,
    )
    return result.exit_code


def _base_config(args: argparse.Namespace) -> PPOConfig:
    from ppo_jax.config.files import read_config_file
    from ppo_jax.envs import preset_config

    file_preset, file_fields = (
        read_config_file(args.config) if args.config else (None, {})
    )
    preset = args.preset or file_preset or "tutorial"
    fields = {**file_fields, **_cli.given_fields(args)}
    return preset_config(preset, **fields).validate()


def _space(args: argparse.Namespace, search: ModuleType) -> SearchSpace:
    """The --space file's entries, each replaced by a --param of its field."""
    params = [search.parse_param(text) for text in args.param]
    names = [p.name for p in params]
    for name in names:
        if names.count(name) > 1:
            from ppo_jax.config.schema import ConfigError

            raise ConfigError("param", name, "each field given once")
    from_file = search.read_space_file(args.space) if args.space else ()
    return tuple(p for p in from_file if p.name not in names) + tuple(params)


if __name__ == "__main__":
    raise SystemExit(main())
