"""The brax family: ``brax/<env>`` (``ant``, ``inverted_pendulum``, ...;
optional extra ``pip install -e '.[brax]'``).

Physics: ``env_backend`` is brax's pipeline (``generalized``, ``positional``,
``spring`` or ``mjx``); default: the environment's own (``generalized``).
Episodes of 1000 steps, no action repeat (brax's training defaults), handled by
:class:`~ppo_jax.envs.state_api.StateEnv`.
"""

from __future__ import annotations

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Environment, PyTree
from ppo_jax.envs.refusals import did_you_mean, require_extra
from ppo_jax.envs.state_api import StateEnv, headless_opengl_default

BACKENDS = ("generalized", "positional", "spring", "mjx")
EPISODE_LENGTH = 1000


def make(task: str, label: str, backend: str | None) -> tuple[Environment, PyTree]:
    """``(StateEnv, params)`` of brax's ``task``; one sentence on errors."""
    require_extra("brax", "brax", "brax", label)
    headless_opengl_default()  # before MuJoCo is imported: GIFs off-screen
    from brax import envs

    names = sorted(envs._envs)
    if task not in names:
        hint = did_you_mean(task, names)
        raise ConfigError("env_name", label, f"a brax environment{hint}")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(
            "env_backend", backend, f"one of {', '.join(BACKENDS)} for {label}"
        )
    kwargs = {} if backend is None else {"backend": backend}
    wrapped = StateEnv(envs.get_environment(task, **kwargs), EPISODE_LENGTH)
    return wrapped, wrapped.default_params
