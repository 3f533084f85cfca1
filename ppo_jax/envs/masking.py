"""Partially observed tasks from any environment: ``hide_obs``.

``--hide-obs 2`` removes entry 2 from every observation (Pendulum-v1 without
its angular velocity: ``[cos, sin]`` of the angle only), so that a policy has
to infer what it no longer sees from what it saw before: a task for a network
with memory (``--network gru``). The wrapped environment follows the contract
of :mod:`ppo_jax.envs.contract`; ``info["final_observation"]`` loses the same
entries. Flat array observations only.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import (
    Environment,
    EnvSpec,
    MaskedObservation,
    PyTree,
    StepResult,
)


class HiddenObservation:
    """``env`` whose observations ``[D]`` keep only the entries ``keep``."""

    def __init__(self, env: Environment, keep: np.ndarray):
        self.env = env  # the wrapped env (``.env``, as other wrappers name it)
        self.keep = keep  # int [D'] indices kept, in order

    def hide(self, obs: Any) -> Any:
        """``obs`` without the hidden entries (a mask stays whole)."""
        if isinstance(obs, MaskedObservation):
            return obs._replace(obs=obs.obs[..., self.keep])
        return obs[..., self.keep]

    def reset(self, key: jax.Array, params: PyTree) -> tuple[Any, PyTree]:
        obs, state = self.env.reset(key, params)
        return self.hide(obs), state

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> StepResult:
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, params
        )
        info = dict(info)
        if "final_observation" in info:
            info["final_observation"] = self.hide(info["final_observation"])
        return self.hide(obs), state, reward, terminated, truncated, info

    def action_space(self, params: PyTree) -> Any:
        return self.env.action_space(params)

    def __getattr__(self, name: str) -> Any:
        # default_params and the like; only reached for names not defined here.
        return getattr(self.__dict__["env"], name)


def kept_entries(hide_obs: tuple[int, ...], spec: EnvSpec, label: str) -> np.ndarray:
    """The indices ``hide_obs`` leaves of a ``spec.obs_shape == (D,)``
    observation; one sentence if the observation is not flat, an index is
    out of range, or nothing would be left."""
    shape = spec.obs_shape
    if len(shape) != 1 or spec.obs_structure is not None:
        raise ConfigError(
            "hide_obs",
            hide_obs,
            f"none for {label}, whose observations are not one flat array "
            f"(shape {_shape(spec)}); hide_obs removes entries of a vector",
        )
    size = shape[0]
    bad = [i for i in hide_obs if not 0 <= i < size]
    if bad:
        raise ConfigError(
            "hide_obs",
            hide_obs,
            f"indices from 0 to {size - 1} of {label}'s {size} observation entries",
        )
    keep = np.setdiff1d(np.arange(size), np.asarray(hide_obs, np.int64))
    if keep.size == 0:
        raise ConfigError(
            "hide_obs", hide_obs, f"fewer than all {size} entries of {label}'s"
        )
    return keep.astype(np.int32)


def _shape(spec: EnvSpec) -> Any:
    """The observations' shape, or their entries' for a dict read whole."""
    if spec.obs_structure is None:
        return spec.obs_shape
    return {k: tuple(v.shape) for k, v in spec.obs_structure.items()}
