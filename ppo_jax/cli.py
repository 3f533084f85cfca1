"""What the two command lines share: config flags from the schema, errors.

The entry points are :mod:`ppo_jax.train` and :mod:`ppo_jax.evaluate`; library
modules never import this one. Bad input ends with one sentence on stderr and
exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from ppo_jax.config import PPOConfig
from ppo_jax.rundir import RunDirError
from ppo_jax.schema import ConfigError, FieldKind, field_kinds, parse_text

EXIT_USAGE = 2
# The errors that mean "bad input": one sentence, exit code 2.
USAGE_ERRORS = (ConfigError, RunDirError)
_UNSET: Any = object()  # default of every config flag: "take the preset's value"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _flag_parser(kind: FieldKind) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return parse_text(kind, text)

    # argparse names the type in its message ("invalid int value: 'four'").
    parse.__name__ = "comma-separated int" if kind.base is tuple else kind.base.__name__
    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`PPOConfig` field (``--env`` for ``env_name``), help
    text from the schema; a flag left out keeps the preset's value."""
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


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line (flags left out are absent)."""
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
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))


def run_guarded(body: Callable[[], int], debug: bool) -> int:
    """``body()``, with bad input turned into one sentence and exit code 2."""
    try:
        return body()
    except USAGE_ERRORS as e:
        if debug:
            raise
        return fail(str(e))
