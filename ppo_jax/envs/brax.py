"""The brax family: ``brax/<env>`` (``ant``, ``inverted_pendulum``, ...;
optional extra ``pip install -e '.[brax]'``).

Physics: ``env_backend`` is brax's pipeline (``generalized``, ``positional``,
``spring`` or ``mjx``); default: the environment's own (``generalized``).
Episodes of 1000 steps, no action repeat (brax's training defaults), handled by
:class:`~ppo_jax.envs.state_api.StateEnv`.
"""

from __future__ import annotations

import difflib
import importlib.util

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Environment, PyTree
from ppo_jax.envs.state_api import StateEnv, headless_opengl_default

BACKENDS = ("generalized", "positional", "spring", "mjx")
EPISODE_LENGTH = 1000


def make(task: str, label: str, backend: str | None) -> tuple[Environment, PyTree]:
    """``(StateEnv, params)`` of brax's ``task``; one sentence on errors."""
    if importlib.util.find_spec("brax") is None:
        raise ConfigError(
            "env_name",
            label,
            "an installed family: brax is missing (pip install -e '.[brax]')",
        )
    headless_opengl_default()  # before MuJoCo is imported: GIFs off-screen
    from brax import envs

    names = sorted(envs._envs)
    if task not in names:
        close = difflib.get_close_matches(task, names, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError("env_name", label, f"a brax environment{hint}")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(
            "env_backend", backend, f"one of {', '.join(BACKENDS)} for {label}"
        )
    kwargs = {} if backend is None else {"backend": backend}
    wrapped = StateEnv(envs.get_environment(task, **kwargs), EPISODE_LENGTH)
    return wrapped, wrapped.default_params
