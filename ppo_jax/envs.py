"""Environment construction and checks (gymnax 1.x)."""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import gymnax
from gymnax.environments import spaces

from ppo_jax.config import ConfigError, PPOConfig


class EnvSpec(NamedTuple):
    """What the networks need to know about an environment."""

    obs_dim: int
    action_dim: int
    action_low: Any  # numpy-compatible bounds, shape [action_dim]
    action_high: Any


def make_env(config: PPOConfig):
    """Build the gymnax env named in ``config`` and its params.

    ``config.max_episode_steps`` (when set) replaces the env's time limit.

    Raises:
        ConfigError: unknown env name (with close matches), or an env whose
            spaces this pipeline does not support.
    """
    name = config.env_name
    if name not in gymnax.registered_envs:
        close = difflib.get_close_matches(name, gymnax.registered_envs, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else None
        allowed = "a gymnax environment name" + (f" ({hint})" if hint else "")
        raise ConfigError("env_name", name, allowed)
    env, params = gymnax.make(name)
    if config.max_episode_steps is not None:
        params = params.replace(max_steps_in_episode=config.max_episode_steps)
    env_spec(env, params, name)  # refuses unsupported spaces before compiling
    return env, params


def env_spec(env, params, name: str = "env") -> EnvSpec:
    """Observation and action sizes; only flat Box spaces are supported."""
    obs_space = env.observation_space(params)
    act_space = env.action_space(params)
    if not isinstance(act_space, spaces.Box) or len(act_space.shape) != 1:
        raise ConfigError(
            "env_name",
            name,
            "an environment with a continuous (Box) action vector; "
            f"this one has {type(act_space).__name__} actions",
        )
    obs_shape = getattr(obs_space, "shape", None)
    if obs_shape is None or len(obs_shape) != 1:
        raise ConfigError(
            "env_name",
            name,
            "an environment with a flat observation vector; "
            f"this one has observations of shape {obs_shape}",
        )
    return EnvSpec(
        obs_dim=int(obs_shape[0]),
        action_dim=int(act_space.shape[0]),
        action_low=act_space.low,
        action_high=act_space.high,
    )
