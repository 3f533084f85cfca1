"""The gymnax family: ``gymnax/NAME`` (or a bare ``NAME``) from gymnax's registry.

gymnax environments already follow the contract (:mod:`ppo_jax.envs.contract`),
so this module only looks names up and builds them.
"""

from __future__ import annotations

import gymnax

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Environment, PyTree
from ppo_jax.envs.refusals import did_you_mean, refuse_backend

# gymnax environments that fetch data from the internet when built.
NEEDS_NETWORK = {"MNISTBandit-bsuite": "it downloads MNIST when built"}


def make(task: str, label: str, backend: str | None) -> tuple[Environment, PyTree]:
    """``(env, default_params)`` of gymnax's ``task``; ``label`` names it in errors.

    Raises:
        ConfigError: an unknown name (with the closest registered names), or an
            environment that would download data: ppo_jax never does at run
            time (refused before building it).
    """
    refuse_backend(backend, label, "gymnax")
    if task in NEEDS_NETWORK:
        raise ConfigError(
            "env_name",
            label,
            f"an environment that builds offline ({NEEDS_NETWORK[task]}; "
            "ppo_jax does not download at run time)",
        )
    if task not in gymnax.registered_envs:
        hint = did_you_mean(task, gymnax.registered_envs)
        raise ConfigError("env_name", label, f"a gymnax environment name{hint}")
    env, params = gymnax.make(task)
    return env, params
