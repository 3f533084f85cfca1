"""``python -m ppo_jax.export RUN_DIR``: write a trained policy as ONNX or npz.

``--format onnx`` (the default; needs ``pip install -e '.[export]'``) writes the
deterministic policy, observation normalization and action clipping included,
as an ONNX model; ``--format npz`` the actor's parameters and observation
statistics as a plain ``.npz``. The library side, with both formats
described, is :mod:`ppo_jax.analysis.exporting` (``export_onnx``,
``export_npz``). Prints one line naming the file written. Bad input: one
sentence, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppo_jax import _cli


def out_path(text: str) -> str:
    """A file argument: refuses the empty string (an unset shell variable)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path (an unset shell variable?): name a file"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    p = _cli.OneLineParser(
        prog="python -m ppo_jax.export",
        description="Write a trained policy (its deterministic action, "
        "observation normalization and action clipping included) as an ONNX "
        "model, or its parameters and observation statistics as a .npz.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _cli.add_run_arguments(p)
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
    return _cli.entry_point(build_parser, _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ppo_jax.analysis import exporting

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
