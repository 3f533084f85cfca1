"""What the five command lines share: config flags from the schema, errors,
signals.

The entry points are :mod:`ppo_jax.train`, :mod:`ppo_jax.evaluate`,
:mod:`ppo_jax.export`, :mod:`ppo_jax.compare` and :mod:`ppo_jax.tune`; library
modules never import this one. This module
imports only the standard library at load time, so that :func:`entry_point`
is in charge of Ctrl-C and SIGTERM from the first moment, even while jax is
being imported.

Bad input ends with one sentence on stderr and exit code 2 (``--debug`` shows
the traceback), argparse's own errors included.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ppo_jax.config.schema import FieldKind

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_UNSET: Any = object()  # default of every config flag: "take the preset's value"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``error: ...``) and exit code 2,
    and a ``--debug`` flag (tracebacks instead of one-line errors)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="show tracebacks on errors"
        )

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def entry_point(
    parser: Callable[[], argparse.ArgumentParser],
    body: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parse ``argv`` with ``parser()`` and run the command's ``body(args)``.

    Bad input becomes one sentence and exit code 2. Ctrl-C and SIGTERM are
    handled from the start (before jax is imported): the first asks to stop
    at the next safe point, a second aborts; either way the command ends with
    one line and exit code 130. ``--debug`` shows tracebacks instead.
    """
    from ppo_jax.run.signals import GracefulStop

    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    with GracefulStop() as stop:
        try:
            from ppo_jax.config.schema import ConfigError
            from ppo_jax.run.resources import ResourceError
            from ppo_jax.run.rundir import RunDirError

            try:
                return body(parser().parse_args(argv))
            except (ConfigError, RunDirError, ResourceError) as e:
                if debug:
                    raise
                return fail(str(e))
        except (KeyboardInterrupt, Exception):
            # An interrupted import can surface as another exception: after a
            # signal, any error is the interruption.
            if debug or not stop.requested and not _is_interrupt():
                raise
            print(
                "error: interrupted; files written so far are complete (writes "
                "are atomic): a run that saved a checkpoint continues with "
                "--resume RUN_DIR",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED


def _is_interrupt() -> bool:
    return isinstance(sys.exc_info()[1], KeyboardInterrupt)


def _flag_parser(kind: FieldKind) -> Callable[[str], Any]:
    from ppo_jax.config.schema import parse_text

    def parse(text: str) -> Any:
        return parse_text(kind, text)

    # argparse names the type in its message ("invalid int value: 'four'").
    parse.__name__ = "comma-separated int" if kind.base is tuple else kind.base.__name__
    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`PPOConfig` field (``--env`` for ``env_name``), help
    text from the schema; a flag left out keeps the preset's value."""
    from ppo_jax.config.ppo_config import PPOConfig
    from ppo_jax.config.schema import field_kinds

    for kind in field_kinds(PPOConfig):
        flags = ["--env", kind.flag] if kind.name == "env_name" else [kind.flag]
        help_text = f"{kind.help} (default: the preset's)"
        if kind.base is bool:
            parser.add_argument(
                *flags,
                dest=kind.name,
                action=argparse.BooleanOptionalAction,
                default=_UNSET,
                help=help_text,
            )
            continue
        choices = [*kind.choices, *(["none"] if kind.optional else [])]
        parser.add_argument(
            *flags,
            dest=kind.name,
            type=_flag_parser(kind),
            default=_UNSET,
            metavar="{" + ",".join(choices) + "}"
            if kind.choices
            else kind.name.upper(),
            help=help_text,
        )


def add_preset_flags(
    parser: argparse.ArgumentParser,
    preset_help: str = "named hyperparameters",
    config_help: str = "config fields from a YAML, TOML or JSON file (a run's "
    "config.json too)",
) -> None:
    """``--preset`` and ``--config``: where a command's config starts, before
    its config flags; ``preset_help`` and ``config_help`` begin their help."""
    from ppo_jax.config.ppo_config import PRESETS

    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help=f"{preset_help}, then the env's overrides (default: the config "
        "file's preset, else tutorial)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"{config_help}; flags override it",
    )


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line (flags left out are absent)."""
    from ppo_jax.config.ppo_config import PPOConfig
    from ppo_jax.config.schema import field_kinds

    return {
        kind.name: getattr(args, kind.name)
        for kind in field_kinds(PPOConfig)
        if getattr(args, kind.name) is not _UNSET
    }


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not an integer >= 1")
    return value


def seed(text: str) -> int:
    """A PRNG seed: an integer from 0 to 2**32 - 1."""
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"{value} is not an integer from 0 to 2**32 - 1"
        )
    return value


def directory(text: str) -> str:
    """A directory argument: refuses the empty string (an unset shell
    variable would otherwise mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty path (an unset shell variable?): name a directory"
        )
    return text


def add_run_dir_flags(
    parser: argparse.ArgumentParser, *, resume_help: str, run_dir_help: str
) -> None:
    """``--resume RUN_DIR`` (continue what a run directory holds) and
    ``--run-dir`` (where a new one goes), each refusing an empty path."""
    parser.add_argument(
        "--resume",
        type=directory,
        default=None,
        metavar="RUN_DIR",
        help=resume_help,
    )
    parser.add_argument(
        "--run-dir",
        type=directory,
        default=None,
        help=run_dir_help,
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR`` and ``--run N``: the run a command reads (evaluate, export)."""
    parser.add_argument(
        "run_dir", type=directory, help="a run directory written by ppo_jax.train"
    )
    parser.add_argument(
        "--run",
        type=int,
        default=0,
        help="which run of a multi-seed or sweep run directory (0-based)",
    )


def enable_compilation_cache() -> None:
    """Let repeated CLI runs of the same program skip XLA compilation.

    The cache lives in ``$PPO_JAX_CACHE_DIR`` (default ``~/.cache/ppo_jax``);
    set it to ``off`` to disable. Only the command lines do this: library users
    keep their own JAX settings.
    """
    import jax

    cache_dir = os.environ.get("PPO_JAX_CACHE_DIR", "~/.cache/ppo_jax")
    if cache_dir.lower() in ("off", "0", "none", ""):
        return
    path = os.path.expanduser(cache_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        from ppo_jax.config.schema import ConfigError

        # jax would skip the cache in silence, every compile paying in full.
        raise ConfigError(
            "PPO_JAX_CACHE_DIR", cache_dir, "a folder for the compilation cache, or off"
        )
    jax.config.update("jax_compilation_cache_dir", path)
