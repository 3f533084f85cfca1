"""The gymnax family: ``gymnax/NAME`` (or a bare ``NAME``) from gymnax's registry.

gymnax environments already follow the contract (:mod:`ppo_jax.envs.contract`),
so this module only looks names up and builds them.
"""

from __future__ import annotations

import difflib

import gymnax

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Environment, PyTree

# gymnax environments that fetch data from the internet when built.
NEEDS_NETWORK = {"MNISTBandit-bsuite": "it downloads MNIST when built"}


def make(task: str, label: str, backend: str | None) -> tuple[Environment, PyTree]:
    """``(env, default_params)`` of gymnax's ``task``; ``label`` names it in errors.

    Raises:
        ConfigError: an unknown name (with the closest registered names), or an
            environment that would download data: ppo_jax never does at run
            time (refused before building it).
    """
    if backend is not None:
        raise ConfigError("env_backend", backend, f"none for {label} (gymnax)")
    if task in NEEDS_NETWORK:
        raise ConfigError(
            "env_name",
            label,
            f"an environment that builds offline ({NEEDS_NETWORK[task]}; "
            "ppo_jax does not download at run time)",
        )
    if task not in gymnax.registered_envs:
        close = difflib.get_close_matches(task, gymnax.registered_envs, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError("env_name", label, f"a gymnax environment name{hint}")
    env, params = gymnax.make(task)
    return env, params
