"""Importing a user's object named ``module.path:attribute`` (CLI doors)."""

from __future__ import annotations

import importlib
from typing import Any

from ppo_jax.config.schema import ConfigError


def is_import_path(name: str) -> bool:
    """``my_pkg.envs:MyEnv`` names an object to import; registry names do not."""
    return ":" in name


def import_object(field: str, path: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted: ``mod:Cls.make``).

    Raises:
        ConfigError: the module cannot be imported or lacks the attribute.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(field, path, "module:attribute, e.g. my_pkg.envs:MyEnv")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised by its code
        raise ConfigError(
            field, path, f"an importable module ({error_summary(e)})"
        ) from e
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                field, path, f"an attribute of module {module_name} (no {part!r})"
            )
        obj = getattr(obj, part)
    return obj


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].rstrip(".") if lines else "no message"


def error_summary(error: BaseException) -> str:
    """``TypeError: what it said`` on one line, for one-sentence refusals."""
    return f"{type(error).__name__}: {_first_line(error)}"
