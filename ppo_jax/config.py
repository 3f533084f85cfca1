"""Configuration: one frozen dataclass, named presets, and validation.

Fields that change array shapes or program structure (``num_envs``,
``rollout_length``, ``hidden_sizes``, ...) are *static*: changing them means a
new compile. Fields that are plain numbers inside the computation (``lr``,
``gamma``, ``clip_eps``, ``action_variance``) are copied into a
:class:`Hyperparams` pytree that ``train`` takes as an argument, so they can be
traced and ``jax.vmap``-ed over for sweeps without recompiling.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
from flax import struct

ACTIVATIONS = ("relu", "tanh")


class ConfigError(ValueError):
    """A config field holds a value that is not allowed.

    The message is one sentence naming the field, the value and what is allowed.
    """

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}.")


@struct.dataclass
class Hyperparams:
    """The traceable hyperparameters: scalars (or batched arrays under vmap).

    All float32. Building one from a config: ``config.hyperparams()``.
    """

    lr: jnp.ndarray
    gamma: jnp.ndarray
    clip_eps: jnp.ndarray
    action_variance: jnp.ndarray


TRACEABLE_FIELDS = tuple(f.name for f in dataclasses.fields(Hyperparams))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every setting of a training run.

    Defaults are the ``tutorial`` preset: the "PPO for beginners" tutorial's
    Pendulum hyperparameters, with 11 envs x 200 steps = 2200 steps per
    iteration (11 whole Pendulum episodes, as the tutorial collects).
    """

    # Environment
    env_name: str = "Pendulum-v1"
    max_episode_steps: int | None = 200  # overrides the env's time limit
    # Batch: rollout_length x num_envs environment steps per iteration
    num_envs: int = 11
    rollout_length: int = 200
    total_timesteps: int = 1_000_000
    # Optimisation
    lr: float = 3e-4
    gamma: float = 0.99
    clip_eps: float = 0.2
    update_epochs: int = 10  # the tutorial's n_updates_per_iteration
    num_minibatches: int = 1  # 1 = the whole batch, as the tutorial
    # Policy and networks
    action_variance: float = 0.5  # fixed diag covariance of the Gaussian policy
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    # Bookkeeping
    save_freq: int = 10  # iterations between checkpoints (and progress reports)
    seed: int = 0

    # ------------------------------------------------------------------ derived
    @property
    def batch_size(self) -> int:
        """Environment steps per iteration."""
        return self.num_envs * self.rollout_length

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        """Iterations needed to simulate at least ``total_timesteps`` steps."""
        return math.ceil(self.total_timesteps / self.batch_size)

    def hyperparams(self) -> Hyperparams:
        """The traceable fields as float32 scalars."""
        return Hyperparams(
            **{
                name: jnp.asarray(getattr(self, name), jnp.float32)
                for name in TRACEABLE_FIELDS
            }
        )

    def replace(self, **changes: Any) -> PPOConfig:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------- (de)serial
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], d[unknown[0]], "not a PPOConfig field")
        d = dict(d)
        if "hidden_sizes" in d:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PPOConfig:
        if name not in PRESETS:
            raise ConfigError("preset", name, f"one of {', '.join(PRESETS)}")
        return PRESETS[name].replace(**overrides)

    # --------------------------------------------------------------- validation
    def validate(self) -> PPOConfig:
        """Check every field; raise :class:`ConfigError` on the first bad one.

        Returns ``self`` so that it chains. Environment-dependent checks (the
        name, the action space) live in :func:`ppo_jax.envs.make_env`.
        """
        for name in (
            "num_envs",
            "rollout_length",
            "total_timesteps",
            "update_epochs",
            "num_minibatches",
            "save_freq",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if self.max_episode_steps is not None:
            _check_int("max_episode_steps", self.max_episode_steps, minimum=1)
        if not isinstance(self.env_name, str) or not self.env_name:
            raise ConfigError("env_name", self.env_name, "a gymnax environment name")
        _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("gamma", self.gamma, low=0.0, high=1.0)
        _check_float("clip_eps", self.clip_eps, low=0.0, low_open=True)
        _check_float("action_variance", self.action_variance, low=0.0, low_open=True)
        sizes = self.hidden_sizes
        if (
            not isinstance(sizes, tuple)
            or not sizes
            or not all(_is_int(h) and h >= 1 for h in sizes)
        ):
            raise ConfigError(
                "hidden_sizes", sizes, "a non-empty tuple of positive integers"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                "activation", self.activation, f"one of {', '.join(ACTIVATIONS)}"
            )
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                "num_minibatches",
                self.num_minibatches,
                f"a divisor of the batch size num_envs*rollout_length="
                f"{self.batch_size}",
            )
        return self


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ConfigError(name, value, f"an integer >= {minimum}")


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value <= high
    ok = ok and (value > low if low_open else value >= low)
    if not ok:
        lo = f"> {low}" if low_open else f">= {low}"
        hi = "" if math.isinf(high) else f" and <= {high}"
        raise ConfigError(name, value, f"a finite number {lo}{hi}")


PRESETS: dict[str, PPOConfig] = {
    # The tutorial's Pendulum column (SPEC.md section 1), vectorized as 11 envs
    # x 200 steps: every env runs exactly one whole episode per iteration.
    "tutorial": PPOConfig(),
}
