"""Environment construction and checks (gymnax 1.x)."""

from __future__ import annotations

import difflib
import math
from typing import Any, NamedTuple

import gymnax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from ppo_jax.config import ConfigError, PPOConfig


class EnvSpec(NamedTuple):
    """What the networks and the policy need to know about an environment."""

    obs_dim: int  # observations are flattened to [obs_dim] float32
    discrete: bool  # True: Discrete actions (int32); False: Box vector
    action_dim: int  # Box: action vector length; Discrete: number of actions
    action_low: Any  # Box bounds, numpy [action_dim]; None when discrete
    action_high: Any


class FlatObservations:
    """Wraps a gymnax env so that observations (and ``final_observation``) are
    flat float32 vectors, e.g. MinAtar's ``[10, 10, C]`` grids -> ``[100 C]``.
    Everything else passes through."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @staticmethod
    def _flat(obs):
        return jnp.reshape(obs, (-1,)).astype(jnp.float32)

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        return self._flat(obs), state

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, params
        )
        info = {**info, "final_observation": self._flat(info["final_observation"])}
        return self._flat(obs), state, reward, terminated, truncated, info


def make_env(config: PPOConfig):
    """Build the gymnax env named in ``config`` (observations flattened).

    ``config.max_episode_steps`` (when set) replaces the env's time limit.

    Raises:
        ConfigError: unknown env name (with close matches), an env whose spaces
            this pipeline does not support, or options that do not fit them.
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
    env = FlatObservations(env)
    check_env_options(config, env_spec(env, params, name))
    return env, params


def env_spec(env, params, name: str = "env") -> EnvSpec:
    """Observation size and action space; Box vectors or Discrete actions."""
    obs_shape = getattr(env.observation_space(params), "shape", None)
    if obs_shape is None:
        raise ConfigError("env_name", name, "an environment with array observations")
    obs_dim = int(math.prod(obs_shape))
    act_space = env.action_space(params)
    if isinstance(act_space, spaces.Discrete):
        return EnvSpec(obs_dim, True, int(act_space.n), None, None)
    if isinstance(act_space, spaces.Box) and len(act_space.shape) == 1:
        shape = act_space.shape
        return EnvSpec(
            obs_dim,
            False,
            int(shape[0]),
            np.broadcast_to(np.asarray(act_space.low, np.float32), shape),
            np.broadcast_to(np.asarray(act_space.high, np.float32), shape),
        )
    raise ConfigError(
        "env_name",
        name,
        "an environment with Discrete or flat Box actions; "
        f"this one has {type(act_space).__name__} actions",
    )


def check_env_options(config: PPOConfig, spec: EnvSpec) -> None:
    """Refuse options that do not fit the env's action space."""
    name = config.env_name
    if spec.discrete:
        if config.policy_std is not None:
            raise ConfigError(
                "policy_std",
                config.policy_std,
                f"none for {name}, whose actions are discrete (a Categorical "
                "policy; the Gaussian std options apply to continuous actions)",
            )
        if config.clip_actions:
            raise ConfigError(
                "clip_actions", True, f"false for {name}, whose actions are discrete"
            )
    elif config.policy_std is None:
        raise ConfigError(
            "policy_std",
            None,
            f"fixed or learned for {name}, whose actions are continuous",
        )
