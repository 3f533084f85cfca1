"""``python -m ppo_jax.export RUN_DIR``: write a trained policy as ONNX or npz.

``--format onnx`` (the default; needs ``pip install -e '.[export]'``) writes the
deterministic policy, observation normalization and action clipping included,
as an ONNX model; ``--format npz`` the actor's parameters and observation
statistics as a plain ``.npz``. The library side, with both formats described,
is :mod:`ppo_jax.exporting` (:func:`export_onnx`, :func:`export_npz`, also
importable from here). Prints one line naming the file written. Bad input:
one sentence, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppo_jax import cli

if TYPE_CHECKING:
    from ppo_jax.exporting import export_npz, export_onnx

__all__ = ["build_parser", "export_npz", "export_onnx", "main"]


def __getattr__(name: str) -> Any:
    # The library functions, imported on first use: the command line imports
    # jax only once it is in charge of signals (see ppo_jax.cli).
    if name in ("export_onnx", "export_npz"):
        from ppo_jax import exporting

        return getattr(exporting, name)
    raise AttributeError(f"module 'ppo_jax.export' has no attribute {name!r}")


def out_path(text: str) -> str:
    """A file argument: refuses the empty string (an unset shell variable)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path (an unset shell variable?): name a file"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m ppo_jax.export",
        description="Write a trained policy (its deterministic action, "
        "observation normalization and action clipping included) as an ONNX "
        "model, or its parameters and observation statistics as a .npz.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cli.add_run_arguments(p)
    p.add_argument(
        "--format",
        choices=("onnx", "npz"),
        default="onnx",
        help="onnx: the policy as a model (needs pip install -e '.[export]'); "
        "npz: actor parameters and observation statistics for numpy",
    )
    p.add_argument(
        "--out",
        type=out_path,
        default=None,
        metavar="PATH",
        # "%(default).0s" prints nothing and keeps argparse's "(default: None)".
        help="the file to write (default: RUN_DIR/policy.FORMAT, or "
        "RUN_DIR/policy-runN.FORMAT for --run N > 0)%(default).0s",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ppo_jax import exporting

    out = None if args.out is None else Path(args.out)
    if args.format == "onnx":
        exporting.check_onnx_installed()  # before loading anything
        path = exporting.export_onnx(
            args.run_dir, out, args.run, overwrite=args.overwrite
        )
    else:
        path = exporting.export_npz(
            args.run_dir, out, args.run, overwrite=args.overwrite
        )
    print(f"wrote {path} ({args.format}, run {args.run})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
