"""The sentences a family adapter refuses with: a missing optional extra, an
unknown task name (with the closest names), an ``env_backend`` it has none of.
One :class:`~ppo_jax.config.schema.ConfigError` each, before anything builds."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable

from ppo_jax.config.schema import ConfigError


def require_extra(package: str, title: str, extra: str, label: str) -> None:
    """Refuse ``label`` when ``package`` (the family ``title``'s library) is
    not installed, naming the extra that installs it."""
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            "env_name",
            label,
            f"an installed family: {title} is missing (pip install -e '.[{extra}]')",
        )


def did_you_mean(name: str, names: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean A or B?)`` with the up to 3 closest of ``names``, or
    ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=cutoff)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def refuse_backend(backend: str | None, label: str, title: str) -> None:
    """Refuse any ``env_backend`` for a family that has no choice of one."""
    if backend is not None:
        raise ConfigError("env_backend", backend, f"none for {label} ({title})")
