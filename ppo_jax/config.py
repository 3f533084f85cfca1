"""Configuration: one frozen dataclass, named presets, and validation.

Fields that change array shapes or program structure (``num_envs``,
``rollout_length``, ``hidden_sizes``, the option switches, ...) are *static*:
changing them means a new compile. Fields that are plain numbers inside the
computation (``lr``, ``gamma``, ``clip_eps``, ``gae_lambda``, ``ent_coef``, ...)
are copied into a :class:`Hyperparams` pytree that ``train`` takes as an
argument, so they can be traced and ``jax.vmap``-ed over for sweeps without
recompiling. Optional limits (``max_grad_norm``, ``target_kl``) are ``None`` in
the config and ``inf`` in :class:`Hyperparams` (a limit that never triggers).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
from flax import struct

ACTIVATIONS = ("relu", "tanh")
ADVANTAGES = ("rtg", "gae")
OPTIMIZERS = ("separate", "joint")
POLICY_STDS = ("fixed", "learned", None)


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
    gae_lambda: jnp.ndarray
    ent_coef: jnp.ndarray
    vf_coef: jnp.ndarray
    max_grad_norm: jnp.ndarray  # inf: no clipping
    adam_eps: jnp.ndarray
    target_kl: jnp.ndarray  # inf: never stop early
    init_log_std: jnp.ndarray


TRACEABLE_FIELDS = tuple(f.name for f in dataclasses.fields(Hyperparams))


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every setting of a training run.

    Defaults are the ``tutorial`` preset: the "PPO for beginners" tutorial's
    Pendulum hyperparameters, with 11 envs x 200 steps = 2200 steps per
    iteration (11 whole Pendulum episodes, as the tutorial collects). Every
    option beyond the tutorial defaults to off / the tutorial's behaviour.
    """

    # Environment
    env_name: str = "Pendulum-v1"
    max_episode_steps: int | None = None  # overrides the env's time limit
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
    advantage: str = "rtg"  # "rtg": G - V(s) (tutorial); "gae": GAE(lambda)
    gae_lambda: float = 0.95
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 1.0  # value loss weight
    optimizer: str = "separate"  # "separate": an Adam each (tutorial); "joint"
    max_grad_norm: float | None = None  # global-norm gradient clipping
    adam_eps: float = 1e-8
    anneal_lr: bool = False  # linear decay to 0 over all gradient steps
    target_kl: float | None = None  # stop remaining epochs once KL exceeds it
    clip_value: bool = False  # PPO2-style value clipping with clip_eps
    # Policy and networks
    policy_std: str | None = "fixed"  # Gaussian std: "fixed", "learned"; None:
    #                                   discrete actions (Categorical policy)
    action_variance: float = 0.5  # the fixed variance (policy_std="fixed")
    init_log_std: float = 0.0  # initial log-std (policy_std="learned")
    clip_actions: bool = False  # clip to the action bounds before env.step
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    ortho_init: bool = False  # orthogonal init (else PyTorch's nn.Linear init)
    # Normalization and time limits
    normalize_obs: bool = False  # running mean/std of observations
    normalize_reward: bool = False  # scale rewards by running return std
    bootstrap_truncation: bool = False  # bootstrap V(final obs) at time limits
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

    @property
    def num_gradient_steps(self) -> int:
        return self.num_iterations * self.update_epochs * self.num_minibatches

    def hyperparams(self) -> Hyperparams:
        """The traceable fields as float32 scalars (``None`` limits as inf)."""

        def value(name):
            v = getattr(self, name)
            return math.inf if v is None else v

        return Hyperparams(
            **{name: jnp.asarray(value(name), jnp.float32) for name in TRACEABLE_FIELDS}
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
        """A preset, its overrides for the chosen env, then ``overrides``."""
        if name not in PRESETS:
            raise ConfigError("preset", name, f"one of {', '.join(PRESETS)}")
        env_name = overrides.get("env_name", PRESETS[name].env_name)
        env_overrides = ENV_OVERRIDES.get((name, env_name), {})
        return (
            PRESETS[name]
            .replace(env_name=env_name, **env_overrides)
            .replace(**overrides)
        )

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
        _check_float("gae_lambda", self.gae_lambda, low=0.0, high=1.0)
        _check_float("ent_coef", self.ent_coef, low=0.0)
        _check_float("vf_coef", self.vf_coef, low=0.0)
        _check_float("adam_eps", self.adam_eps, low=0.0, low_open=True)
        _check_float("init_log_std", self.init_log_std, low=-20.0, high=5.0)
        for name in ("max_grad_norm", "target_kl"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), low=0.0, low_open=True)
        for name, allowed in (
            ("advantage", ADVANTAGES),
            ("optimizer", OPTIMIZERS),
            ("policy_std", POLICY_STDS),
        ):
            if getattr(self, name) not in allowed:
                listed = ", ".join(str(a) for a in allowed)
                raise ConfigError(name, getattr(self, name), f"one of {listed}")
        for name in BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "true or false")
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


# The on/off switches: every field whose default is a bool.
BOOL_FIELDS = tuple(
    f.name for f in dataclasses.fields(PPOConfig) if isinstance(f.default, bool)
)

PRESETS: dict[str, PPOConfig] = {
    # The tutorial's Pendulum column (SPEC.md section 1), vectorized as 11 envs
    # x 200 steps: every env runs exactly one whole episode per iteration.
    "tutorial": PPOConfig(),
    # Modern PPO for continuous control; see README "Presets" for the why of
    # each value and benchmarks/results/learning.md for what it reaches.
    "tuned": PPOConfig(
        num_envs=16,
        rollout_length=256,
        total_timesteps=1_000_000,
        lr=1e-3,
        gamma=0.95,
        clip_eps=0.2,
        update_epochs=10,
        num_minibatches=16,
        advantage="gae",
        gae_lambda=0.95,
        ent_coef=0.0,
        vf_coef=0.5,
        optimizer="joint",
        max_grad_norm=0.5,
        adam_eps=1e-5,
        anneal_lr=True,
        policy_std="learned",
        init_log_std=0.0,
        clip_actions=True,
        activation="tanh",
        ortho_init=True,
        normalize_obs=True,
        normalize_reward=True,
        bootstrap_truncation=True,
    ),
}

# Per-environment changes to a preset, applied before the user's overrides.
_DISCRETE_TUNED = dict(
    policy_std=None,
    clip_actions=False,
    num_envs=8,
    rollout_length=128,
    num_minibatches=4,
    update_epochs=4,
    lr=2.5e-4,
    gamma=0.99,
    ent_coef=0.01,
    normalize_reward=False,
    total_timesteps=500_000,
)
ENV_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("tuned", "CartPole-v1"): _DISCRETE_TUNED,
    # Acrobot's reset observations are nearly constant: early running statistics
    # blow its inputs up, and 3 of 8 seeds never learned with normalization.
    ("tuned", "Acrobot-v1"): {**_DISCRETE_TUNED, "normalize_obs": False},
    ("tuned", "Breakout-MinAtar"): {
        **_DISCRETE_TUNED,
        "num_envs": 64,
        "num_minibatches": 8,
        "total_timesteps": 2_000_000,
        "lr": 5e-3,
        "activation": "relu",
        "normalize_obs": False,  # binary grids: already in [0, 1]
    },
    ("tuned", "MountainCarContinuous-v0"): dict(
        gamma=0.99, init_log_std=0.5, total_timesteps=1_000_000
    ),
}
