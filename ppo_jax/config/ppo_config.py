"""Configuration: one frozen dataclass, named presets, and validation.

Every field is declared once with :func:`ppo_jax.config.schema.option`: its help text
(CLI ``--help`` and the options table of ppo_jax/config/README.md), whether it is
*traceable* and the values it allows. Fields that change array shapes or program
structure (``num_envs``, ``rollout_length``, ``hidden_sizes``, the option switches,
...) are *static*: changing them means a new compile. Traceable fields are plain
numbers inside the computation (``lr``, ``gamma``, ``clip_eps``, ...); they are copied
into a :class:`Hyperparams` pytree that ``train`` takes as an argument, so they can be
traced and ``jax.vmap``-ed over for sweeps without recompiling. Optional limits
(``max_grad_norm``, ``target_kl``) are ``None`` in the config and ``inf`` in
:class:`Hyperparams` (a limit that never triggers).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.config.presets import (
    DISCRETE_OVERRIDES,
    ENV_OVERRIDES,
    FAMILY_OVERRIDES,
    PRESET_FIELDS,
)
from ppo_jax.config.schema import (
    INT32_MAX,
    ConfigError,
    check_fields,
    field_kinds,
    option,
)

__all__ = [
    "BOOL_FIELDS",
    "ConfigError",
    "DISCRETE_OVERRIDES",
    "ENV_OVERRIDES",
    "Hyperparams",
    "PPOConfig",
    "PRESETS",
    "TRACEABLE_FIELDS",
]


@struct.dataclass
class Hyperparams:
    """The traceable config fields: float32 scalars (or ``[R]`` arrays under vmap).

    Built from a config with ``config.hyperparams()``; its fields are exactly
    the config fields declared ``traceable`` (a test checks it).
    """

    lr: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    max_grad_norm: jax.Array  # inf: no clipping
    adam_eps: jax.Array
    lr_warmup: jax.Array  # fraction of gradient steps (cosine schedule)
    lr_kl_target: jax.Array  # the adaptive_kl schedule's settings
    lr_kl_margin: jax.Array
    lr_factor: jax.Array
    lr_min: jax.Array
    lr_max: jax.Array
    target_kl: jax.Array  # inf: never stop early
    action_variance: jax.Array
    init_log_std: jax.Array
    min_std: jax.Array


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Every setting of a training run.

    Defaults are the ``tutorial`` preset: the "PPO for beginners" tutorial's
    Pendulum hyperparameters, with 11 envs x 200 steps = 2200 steps per
    iteration (11 whole Pendulum episodes, as the tutorial collects). Every
    option beyond the tutorial defaults to off / the tutorial's behaviour.
    """

    # Environment and networks
    env_name: str = option(
        "Pendulum-v1",
        "environment (--env for short): a gymnax name (Pendulum-v1), FAMILY/NAME "
        "(gymnax/CartPole-v1) or module:Class for your own",
    )
    obs_key: str | None = option(
        None, "the key the networks read from dict observations (none: arrays)"
    )
    critic_obs_key: str | None = option(
        None,
        "another key of dict observations for the critic alone, e.g. "
        "privileged_state (none: the critic reads obs_key, as the actor)",
    )
    max_episode_steps: int | None = option(
        None, "episode time limit replacing the env's (none: the env's own)", low=1
    )
    env_backend: str | None = option(
        None,
        "physics of playground/ (jax, warp) or brax/ (generalized, positional, "
        "spring, mjx) envs; none: the family's default",
    )
    network: str = option(
        "mlp",
        "network factory: mlp, cnn (grid observations), gru or cnn-gru (with "
        "memory), or module:factory for your own",
    )
    hide_obs: tuple[int, ...] | None = option(
        None,
        "indices of observation entries the agent never sees, comma-separated: "
        "a partially observed task (2: Pendulum without its angular velocity)",
    )
    # Batch: rollout_length x num_envs environment steps per iteration
    num_envs: int = option(11, "parallel environments", low=1)
    rollout_length: int = option(200, "steps per environment per iteration", low=1)
    total_timesteps: int = option(
        1_000_000, "environment steps to simulate (rounded up to whole iterations)",
        low=1,
    )  # fmt: skip
    # Optimisation
    lr: float = option(
        3e-4, "Adam learning rate of actor and critic", traceable=True, low=0.0,
        low_open=True,
    )  # fmt: skip
    gamma: float = option(0.99, "discount factor", traceable=True, low=0.0, high=1.0)
    advantage: Literal["rtg", "gae"] = option(
        "rtg", "rtg: rewards-to-go minus V(s) (tutorial); gae: GAE(gae_lambda)"
    )
    gae_lambda: float = option(
        0.95, "GAE lambda (advantage gae)", traceable=True, low=0.0, high=1.0
    )
    clip_eps: float = option(
        0.2, "PPO clip range epsilon", traceable=True, low=0.0, low_open=True
    )
    update_epochs: int = option(
        10, "epochs per iteration (tutorial: n_updates_per_iteration)", low=1
    )
    num_minibatches: int = option(
        1, "minibatches per epoch, a divisor of the batch (1: the whole batch)", low=1
    )
    ent_coef: float = option(0.0, "entropy bonus weight", traceable=True, low=0.0)
    vf_coef: float = option(1.0, "value loss weight", traceable=True, low=0.0)
    optimizer: Literal["separate", "joint"] = option(
        "separate", "separate: an Adam each for actor and critic (tutorial); joint"
    )
    max_grad_norm: float | None = option(
        None, "global-norm gradient clipping, per network with separate (none: off)",
        traceable=True, low=0.0, low_open=True,
    )  # fmt: skip
    adam_eps: float = option(
        1e-8, "Adam epsilon", traceable=True, low=0.0, low_open=True
    )
    anneal_lr: bool = option(
        False, "learning rate falls linearly to 0 over all gradient steps (the "
        "same as lr_schedule linear)",
    )  # fmt: skip
    lr_schedule: Literal["constant", "linear", "cosine", "adaptive_kl"] = option(
        "constant",
        "learning rate over the run: constant; linear to 0 over all gradient "
        "steps; cosine to 0 after a linear warm-up over lr_warmup of the steps; "
        "adaptive_kl: divided by lr_factor when the measured KL exceeds "
        "lr_kl_target*lr_kl_margin, multiplied by it below "
        "lr_kl_target/lr_kl_margin, within [lr_min, lr_max]",
    )
    lr_warmup: float = option(
        0.0, "cosine: the fraction of gradient steps over which the rate rises "
        "linearly to lr", traceable=True, low=0.0, high=1.0,
    )  # fmt: skip
    lr_adapt_every: Literal["minibatch", "epoch"] = option(
        "minibatch",
        "adaptive_kl: adapt the rate after every gradient step (from its "
        "minibatch's KL) or after every epoch (from the epoch's mean KL)",
    )
    lr_kl_target: float = option(
        0.01, "adaptive_kl: the KL the rate steers towards", traceable=True,
        low=0.0, low_open=True,
    )  # fmt: skip
    lr_kl_margin: float = option(
        2.0, "adaptive_kl: how far (a factor) the KL may stray from "
        "lr_kl_target before the rate moves", traceable=True, low=1.0,
        low_open=True,
    )  # fmt: skip
    lr_factor: float = option(
        1.5, "adaptive_kl: the factor the rate moves by", traceable=True, low=1.0,
        low_open=True,
    )  # fmt: skip
    lr_min: float = option(
        1e-5, "adaptive_kl: the lowest rate", traceable=True, low=0.0,
        low_open=True,
    )  # fmt: skip
    lr_max: float = option(
        1e-2, "adaptive_kl: the highest rate", traceable=True, low=0.0,
        low_open=True,
    )  # fmt: skip
    target_kl: float | None = option(
        None,
        "skip the remaining epochs once an epoch's mean KL exceeds it (none: off)",
        traceable=True,
        low=0.0,
        low_open=True,
    )
    clip_value: bool = option(
        False, "PPO2 value clipping: clip_eps around the rollout's values"
    )
    # Policy and networks
    policy_std: Literal["fixed", "learned"] | None = option(
        "fixed",
        "Gaussian std: fixed (action_variance, tutorial) or learned (state-"
        "independent, from init_log_std); none for discrete actions",
    )
    action_variance: float = option(
        0.5, "the fixed Gaussian variance (tutorial: 0.5)", traceable=True, low=0.0,
        low_open=True,
    )  # fmt: skip
    init_log_std: float = option(
        0.0, "initial learned log-std", traceable=True, low=-20.0, high=5.0
    )
    min_std: float = option(
        0.0,
        "floor of the learned std, added to it: std = min_std + exp(log_std), "
        "so the policy never narrows below it (0: off)",
        traceable=True,
        low=0.0,
    )
    clip_actions: bool = option(
        False, "clip actions to the env's bounds before stepping (sample stored)"
    )
    bounded_mean: bool = option(
        False,
        "squash the Gaussian's mean into the env's action bounds with tanh "
        "(mean = middle + half_width * tanh(actor output)), so that it cannot "
        "drift past a bound where clipping hides it (std and sampling unchanged)",
    )
    hidden_sizes: tuple[int, ...] = option(
        (64, 64), "hidden layer widths, comma-separated", low=1
    )
    activation: Literal["relu", "tanh"] = option("relu", "hidden activation")
    conv_channels: tuple[int, ...] = option(
        (16,), "channels of the cnn torso's conv layers (3x3 by default)", low=1
    )
    conv_kernel: int = option(3, "conv kernel size (stride 1, same padding)", low=1)
    recurrent_size: int = option(
        128, "GRU hidden state size (networks gru, cnn-gru)", low=1
    )
    ortho_init: bool = option(False, "orthogonal init (else PyTorch's nn.Linear init)")
    # Normalization and time limits
    normalize_obs: bool = option(
        False, "normalize observations by their running mean and std"
    )
    normalize_reward: bool = option(
        False, "divide rewards by the running std of the discounted return"
    )
    bootstrap_truncation: bool = option(
        False, "at a time limit, bootstrap from V(final observation)"
    )
    # Evaluation inside the compiled run
    eval_every: int = option(
        0,
        "iterations between evaluations of the policy (its mode, or samples: "
        "eval_actions) on freshly reset envs inside the compiled run, and after "
        "the last iteration: eval_return/eval_length columns; 0: off",
        low=0,
    )
    eval_episodes: int = option(
        10, "episodes per evaluation, run side by side (vmapped)", low=1,
        high=1024,
    )  # fmt: skip
    eval_seed: int = option(
        0,
        "PRNG seed of the evaluation episodes: every evaluation plays the same "
        "episodes, those of python -m ppo_jax.evaluate --seed with as many "
        "--episodes",
        low=0,
        high=2**32 - 1,
    )
    eval_actions: Literal["mode", "sample"] = option(
        "mode",
        "the evaluation's actions: the policy's mode (deterministic) or a sample "
        "of it at each step (as rejax and NAVIX evaluate); python -m "
        "ppo_jax.evaluate plays a run's by default",
    )
    # Bookkeeping
    save_freq: int = option(
        10, "iterations between progress reports and checkpoints", low=1
    )
    seed: int = option(0, "PRNG seed", low=0, high=2**32 - 1)

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

    @property
    def schedule(self) -> str:
        """The learning-rate schedule in effect: ``lr_schedule``, or
        ``linear`` with ``anneal_lr``."""
        return "linear" if self.anneal_lr else self.lr_schedule

    def hyperparams(self) -> Hyperparams:
        """The traceable fields as float32 scalars (``None`` limits as inf)."""

        def value(name: str) -> float:
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
        for name in ("hidden_sizes", "conv_channels", "hide_obs"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PPOConfig:
        """The config of a ``to_dict`` (a run's ``config.json``): every field,
        except those added since the first release (their defaults then).

        Raises:
            ValueError: not a dict of fields, unknown or missing fields.
        """
        if not isinstance(d, dict):
            raise ValueError(
                f"a JSON object of config fields, not a {type(d).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], d[unknown[0]], "not a PPOConfig field")
        missing = sorted(known - set(d) - set(ADDED_FIELDS))
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PPOConfig:
        """A preset, its overrides for the chosen env, then ``overrides``."""
        if name not in PRESETS:
            raise ConfigError("preset", name, f"one of {', '.join(PRESETS)}")
        env_name = overrides.get("env_name", PRESETS[name].env_name)
        env_overrides = preset_env_overrides(name, env_name) or {}
        return (
            PRESETS[name]
            .replace(env_name=env_name, **env_overrides)
            .replace(**overrides)
        )

    # --------------------------------------------------------------- validation
    def validate(self) -> PPOConfig:
        """Check every field; raise :class:`ConfigError` on the first bad one.

        Returns ``self`` so that it chains. Environment-dependent checks (the
        name, the action space) happen where the env is built
        (:func:`ppo_jax.envs.make_env`), still before anything compiles.
        """
        check_fields(self)
        # Counters inside the compiled program are int32.
        if self.batch_size > INT32_MAX:
            raise ConfigError(
                "num_envs",
                self.num_envs,
                f"a number of envs whose batch num_envs*rollout_length fits in "
                f"int32 (<= {INT32_MAX}; here {self.batch_size})",
            )
        if self.num_iterations * self.batch_size > INT32_MAX:
            raise ConfigError(
                "total_timesteps",
                self.total_timesteps,
                f"at most {INT32_MAX // self.batch_size * self.batch_size} with "
                f"this batch of "
                f"{self.batch_size} (the step counter is int32)",
            )
        if self.num_gradient_steps > INT32_MAX:
            raise ConfigError(
                "update_epochs",
                self.update_epochs,
                "a number whose gradient steps over the run fit in int32",
            )
        if self.anneal_lr and self.lr_schedule not in ("constant", "linear"):
            raise ConfigError(
                "anneal_lr",
                True,
                f"off with lr_schedule={self.lr_schedule} (anneal_lr is "
                "lr_schedule=linear; choose one schedule)",
            )
        if self.schedule == "adaptive_kl" and not (
            self.lr_min <= self.lr <= self.lr_max
        ):
            raise ConfigError(
                "lr",
                self.lr,
                f"a rate within [lr_min, lr_max] = [{self.lr_min:g}, "
                f"{self.lr_max:g}] with lr_schedule=adaptive_kl (the rate starts "
                "at lr and stays within them)",
            )
        if self.batch_size % self.num_minibatches:
            raise ConfigError(
                "num_minibatches",
                self.num_minibatches,
                f"a divisor of the batch size num_envs*rollout_length="
                f"{self.batch_size}",
            )
        return self


def preset_env_overrides(preset: str, env_name: str) -> dict[str, Any] | None:
    """The preset's table for ``env_name``: its own (ENV_OVERRIDES), else its
    family's (FAMILY_OVERRIDES, ``FAMILY/NAME``); None when it has neither."""
    own = ENV_OVERRIDES.get((preset, bare_env_name(env_name)))
    if own is not None:
        return own
    family, sep, _ = env_name.partition("/")
    return FAMILY_OVERRIDES.get((preset, family)) if sep else None


def bare_env_name(env_name: str) -> str:
    """``gymnax/CartPole-v1`` -> ``CartPole-v1`` (the key of ENV_OVERRIDES)."""
    family, sep, task = env_name.partition("/")
    return task if sep and family == "gymnax" else env_name


# Fields added after config.json files were first written: a file without
# them means their defaults (the behaviour from before they existed).
ADDED_FIELDS = (
    "obs_key",
    "network",
    "env_backend",
    "critic_obs_key",
    "hide_obs",
    "conv_channels",
    "conv_kernel",
    "recurrent_size",
    "lr_schedule",
    "lr_warmup",
    "lr_adapt_every",
    "lr_kl_target",
    "lr_kl_margin",
    "lr_factor",
    "lr_min",
    "lr_max",
    "eval_every",
    "eval_episodes",
    "eval_seed",
    "min_std",
    "bounded_mean",
    "eval_actions",
)
TRACEABLE_FIELDS = tuple(k.name for k in field_kinds(PPOConfig) if k.traceable)
# The on/off switches.
BOOL_FIELDS = tuple(k.name for k in field_kinds(PPOConfig) if k.base is bool)

PRESETS: dict[str, PPOConfig] = {
    name: PPOConfig(**fields) for name, fields in PRESET_FIELDS.items()
}
