"""``python -m ppo_jax.compare RUN_DIR [RUN_DIR ...]``: runs side by side, with
confidence.

Writes one figure (``--out``, default ``compare.png``) of each run directory's
learning curve, the IQM over its runs in a 95% bootstrap band, and prints a
markdown table of final returns (IQM [95% CI], mean ± std); what each figure
means is in :mod:`ppo_jax.analysis.comparison`.

Bad input (a missing directory, one without ``metrics.csv`` or with no
complete row yet, an ``--out`` that is not a ``.png`` file path, labels that do
not match the directories): one sentence, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax import _cli

DEFAULT_OUT = Path("compare.png")


def build_parser() -> argparse.ArgumentParser:
    p = _cli.OneLineParser(
        prog="python -m ppo_jax.compare",
        description="Compare run directories: learning curves (IQM over each "
        "directory's runs, 95% bootstrap band) in one PNG, and a markdown "
        "table of final returns (IQM [95% CI], mean ± std).",
    )
    p.add_argument(
        "run_dirs",
        type=_cli.directory,
        nargs="+",
        metavar="RUN_DIR",
        help="run directories written by ppo_jax.train (multi-seed ones give "
        "an interval over their seeds)",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="the figure to write, a .png path (default: compare.png)",
    )
    p.add_argument(
        "--label",
        dest="labels",
        action="extend",
        nargs="+",
        default=None,
        metavar="NAME",
        help="one name per RUN_DIR, in their order (default: the directories' names)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return _cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    run_dirs = [Path(d) for d in args.run_dirs]
    labels = args.labels if args.labels is not None else _default_labels(run_dirs)
    if len(labels) != len(run_dirs):
        return _cli.fail(
            f"{len(labels)} --label name(s) for {len(run_dirs)} run directories: "
            "give one per directory, in their order"
        )
    if not all(label.strip() for label in labels):
        return _cli.fail("a --label is empty: give each directory a name")
    from ppo_jax.analysis import comparison
    from ppo_jax.run.rundir import read_rows
    from ppo_jax.run.signals import check_stop

    problem = comparison.check_out(args.out)
    if problem:
        return _cli.fail(problem)
    out = Path(args.out)
    for run_dir in run_dirs:  # every directory checked before any work
        problem = comparison.check_run_dir(run_dir)
        if problem:
            return _cli.fail(problem)

    loaded = []
    for run_dir in run_dirs:  # every file read and checked before any work
        rows = read_rows(run_dir)
        problem = comparison.check_rows(run_dir, rows)
        if problem:
            return _cli.fail(problem)
        loaded.append((rows, comparison.load_run_config(run_dir)))
    varying = comparison.varying_fields([c[0] for _, c in loaded if c is not None])
    compared = []
    for label, (rows, config) in zip(labels, loaded, strict=True):
        compared.append(comparison.compare_run(label, rows, config, varying))
        check_stop()
    comparison.plot_curves(compared, out)
    print(comparison.comparison_table(compared))
    print(f"\nplot: {out}")
    return 0


def _default_labels(run_dirs: list[Path]) -> list[str]:
    """The directories' names; their paths as given when names repeat."""
    names = [d.resolve().name or str(d) for d in run_dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in run_dirs]


if __name__ == "__main__":
    raise SystemExit(main())
