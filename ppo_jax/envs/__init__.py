"""Environments: families of adapters, a user's own objects, one contract.

``config.env_name`` says where an environment comes from:

- ``FAMILY/NAME``: a registered family (:data:`FAMILIES`, one module each under
  ``ppo_jax/envs/``) builds it, e.g. ``gymnax/Pendulum-v1``;
- a bare ``NAME``: the gymnax family (every name gymnax registers);
- ``module:Attribute``: your own, imported; a class or factory is called with
  no arguments and may return ``env`` or ``(env, params)``.

Or pass an environment object to ``make_train(config, env=..., env_params=...)``.
Every environment is checked against the contract of
:mod:`ppo_jax.envs.contract` before anything compiles.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ppo_jax._imports import error_summary, import_object, is_import_path
from ppo_jax.config.ppo_config import PPOConfig, preset_env_overrides
from ppo_jax.config.presets import DISCRETE_OVERRIDES
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import (
    Environment,
    EnvSetup,
    EnvSpec,
    PyTree,
    describe,
    inspect_environment,
    is_categorical_space,
)
from ppo_jax.envs.deferred_imports import defer_import
from ppo_jax.envs.masking import HiddenObservation, kept_entries

# Before any family module imports its library: gymnax imports seaborn for
# its renderers, 1 s of each command's start that ppo_jax never uses.
defer_import("seaborn")

__all__ = [
    "FAMILIES",
    "EnvSetup",
    "EnvSpec",
    "Environment",
    "make_env",
    "preset_config",
    "split_env_name",
]

# family prefix -> module with ``make(task, label) -> (env, default_params)``.
# A new family is one module and one line here.
FAMILIES: dict[str, str] = {
    "gymnax": "ppo_jax.envs.gymnax",
    "playground": "ppo_jax.envs.playground",
    "brax": "ppo_jax.envs.brax",
    "craftax": "ppo_jax.envs.craftax",
    "xminigrid": "ppo_jax.envs.xminigrid",
    "navix": "ppo_jax.envs.navix",
    "jumanji": "ppo_jax.envs.jumanji",
    "pgx": "ppo_jax.envs.pgx",
}
DEFAULT_FAMILY = "gymnax"


def split_env_name(env_name: str) -> tuple[str, str]:
    """``gymnax/CartPole-v1`` or ``CartPole-v1`` -> ``("gymnax", "CartPole-v1")``."""
    family, sep, task = env_name.partition("/")
    return (family, task) if sep else (DEFAULT_FAMILY, env_name)


def make_env(
    config: PPOConfig,
    env: Environment | None = None,
    env_params: PyTree | None = None,
) -> EnvSetup:
    """The environment of ``config`` (or ``env``), checked and described.

    ``env``: an object following the contract; ``config.env_name`` is then only
    a label. ``env_params``: its parameters (default: ``env.default_params``
    when it has them). ``config.max_episode_steps`` (when set) replaces
    ``params.max_steps_in_episode``.

    Raises:
        ConfigError: unknown names, an environment that breaks the contract,
            or options that do not fit its spaces; one sentence each.
    """
    if env is None:
        env, default_params, label = _named_env(config.env_name, config.env_backend)
    else:
        default_params, label = None, describe(env)
    if env_params is None:
        env_params = _default_params(env, default_params)
    env_params = _apply_time_limit(env_params, config, label)
    setup = inspect_environment(
        env, env_params, config.obs_key, label, config.critic_obs_key
    )
    if config.hide_obs is not None:
        if config.obs_key is not None:
            raise ConfigError(
                "hide_obs",
                config.hide_obs,
                "none with obs_key: it removes entries of array observations",
            )
        keep = kept_entries(config.hide_obs, setup.spec, label)
        setup = inspect_environment(
            HiddenObservation(env, keep), env_params, None, label
        )
    check_env_options(config, setup.spec, label)
    return setup


def preset_config(name: str, **overrides: Any) -> PPOConfig:
    """``PPOConfig.from_preset(name, **overrides)``, adapted to a discrete
    action space: for an env with discrete actions that the preset has no
    overrides for, the preset's :data:`~ppo_jax.config.presets.DISCRETE_OVERRIDES`
    (``tuned``: a Categorical policy, no action clipping), except for fields
    given in ``overrides``."""
    config = PPOConfig.from_preset(name, **overrides)
    adapt = {
        field: value
        for field, value in DISCRETE_OVERRIDES.get(name, {}).items()
        if field not in overrides
    }
    if not adapt or preset_env_overrides(name, config.env_name) is not None:
        return config
    try:
        env, params, _ = _named_env(config.env_name, config.env_backend)
        space = env.action_space(_default_params(env, params))
    except Exception:  # make_env reports a broken env in its own words later
        return config
    return config.replace(**adapt) if is_categorical_space(space) else config


def _default_params(env: Environment, params: PyTree | None) -> PyTree:
    """The family's (or factory's) params, else the env's ``default_params``."""
    return params if params is not None else getattr(env, "default_params", None)


def _named_env(
    env_name: str, backend: str | None = None
) -> tuple[Environment, PyTree, str]:
    if is_import_path(env_name) and backend is not None:
        raise ConfigError(
            "env_backend", backend, f"none for your own environment {env_name}"
        )
    if is_import_path(env_name):
        env, params = _user_env(env_name)
        return env, params, env_name
    family, task = split_env_name(env_name)
    if family not in FAMILIES:
        raise ConfigError(
            "env_name",
            env_name,
            f"FAMILY/NAME with a family of {', '.join(FAMILIES)}, a gymnax name, "
            "or module:Class for your own environment",
        )
    module = importlib.import_module(FAMILIES[family])
    env, params = module.make(task, env_name, backend)
    return env, params, env_name


def _user_env(path: str) -> tuple[Environment, PyTree]:
    """Import ``module:Attribute``: an env object, or a class/factory to call."""
    obj: Any = import_object("env_name", path)
    is_env_object = not isinstance(obj, type) and callable(getattr(obj, "reset", None))
    if callable(obj) and not is_env_object:
        try:
            obj = obj()
        except Exception as e:  # the user's code: any error becomes one sentence
            raise ConfigError(
                "env_name",
                path,
                f"a class or factory callable with no arguments "
                f"(calling it failed with {error_summary(e)})",
            ) from e
    if isinstance(obj, tuple) and len(obj) == 2:
        return obj[0], obj[1]
    return obj, None


def _apply_time_limit(params: PyTree, config: PPOConfig, label: str) -> PyTree:
    if config.max_episode_steps is None:
        return params
    if not hasattr(params, "max_steps_in_episode") or not hasattr(params, "replace"):
        raise ConfigError(
            "max_episode_steps",
            config.max_episode_steps,
            f"none for {label}, whose params have no max_steps_in_episode",
        )
    return params.replace(max_steps_in_episode=config.max_episode_steps)


def check_env_options(config: PPOConfig, spec: EnvSpec, label: str) -> None:
    """Refuse options that do not fit the env's action space."""
    if spec.discrete:
        if config.policy_std is not None:
            raise ConfigError(
                "policy_std",
                config.policy_std,
                f"none for {label}, whose actions are discrete (a Categorical "
                "policy; the Gaussian std options apply to continuous actions)",
            )
        if config.clip_actions:
            raise ConfigError(
                "clip_actions", True, f"false for {label}, whose actions are discrete"
            )
    elif config.policy_std is None:
        raise ConfigError(
            "policy_std",
            None,
            f"fixed or learned for {label}, whose actions are continuous",
        )
    if config.min_std > 0 and config.policy_std != "learned":
        why = (
            f"for {label}, whose actions are discrete"
            if spec.discrete
            else "with policy_std=fixed (it floors a learned std: policy_std=learned)"
        )
        raise ConfigError("min_std", config.min_std, f"0 {why}")
    if config.bounded_mean:
        if spec.discrete:
            raise ConfigError(
                "bounded_mean", True, f"false for {label}, whose actions are discrete"
            )
        low, high = spec.action_low, spec.action_high
        if low is None or high is None or not np.isfinite([low, high]).all():
            raise ConfigError(
                "bounded_mean",
                True,
                f"false for {label}, whose action bounds are not all finite",
            )
