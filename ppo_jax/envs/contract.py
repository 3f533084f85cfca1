"""The environment contract (gymnax 1.x) and its check before compiling.

Any object with these methods trains::

    reset(key, params) -> (obs, state)
    step(key, state, action, params)
        -> (obs, state, reward, terminated, truncated, info)
    action_space(params)   # Discrete (has .n) or a 1-D Box (.low, .high, .shape)

``step`` resets a finished episode by itself and puts the observation the
episode ended on (before that reset) in ``info["final_observation"]``;
``reward`` is a scalar, ``terminated``/``truncated`` scalar booleans (truncated:
ended by a time limit). ``obs`` is an array of any shape, or a dict of arrays of
which the networks read one key (``obs_key``), and the critic may read another
(``critic_obs_key``: an asymmetric actor-critic, the critic sees privileged
observations the actor does not). ``state`` and ``params`` are the
environment's own pytrees; a ``params.max_steps_in_episode`` is the time limit
that ``max_episode_steps`` overrides and evaluation runs to.

:func:`inspect_environment` picks the observation keys
(:func:`select_observations`), then checks all of this with one
``jax.eval_shape`` of ``reset`` and one of ``step`` (tracing only, nothing
compiles; :func:`check_environment`) and refuses a wrong environment with one
sentence naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax._imports import error_summary
from ppo_jax.config.schema import ConfigError

# An environment's own state and parameter types: any pytree it chooses.
PyTree: TypeAlias = Any
Observation: TypeAlias = jax.Array
StepResult: TypeAlias = tuple[
    Observation, PyTree, jax.Array, jax.Array, jax.Array, dict[str, Any]
]


class AsymmetricObservation(NamedTuple):
    """An observation read by actor and critic from two keys of a dict.

    Also the structure of their normalization statistics (one
    ``RunningMeanStd`` per part) and of everything stored per observation."""

    actor: Any  # [..., *obs_shape] what the policy reads (``obs_key``)
    critic: Any  # [..., *critic_obs_shape] what the critic reads (``critic_obs_key``)


def actor_part(tree: Any) -> Any:
    """The actor's part of an observation (or of its statistics): itself
    unless it is an :class:`AsymmetricObservation`."""
    return tree.actor if isinstance(tree, AsymmetricObservation) else tree


def critic_part(tree: Any) -> Any:
    """The critic's part of an observation (or of its statistics)."""
    return tree.critic if isinstance(tree, AsymmetricObservation) else tree


def select_where(mask: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    """Leaf by leaf, ``a`` where ``mask`` holds, else ``b``. ``mask`` covers
    the leaves' leading axes: a scalar picks whole leaves, ``[N]`` picks rows
    (an env's state, an observation, a network's carry)."""
    mask = jnp.asarray(mask)

    def pick(x: jax.Array, y: jax.Array) -> jax.Array:
        lead = mask.reshape(mask.shape + (1,) * (jnp.ndim(x) - mask.ndim))
        return jnp.where(lead, x, y)

    return jax.tree.map(pick, a, b)


class Environment(Protocol):
    """What ppo_jax steps: the gymnax 1.x ``Environment`` interface."""

    def reset(self, key: jax.Array, params: PyTree) -> tuple[Observation, PyTree]: ...

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> StepResult: ...

    def action_space(self, params: PyTree) -> Any: ...


class EnvSpec(NamedTuple):
    """What the networks and the policy need to know about an environment."""

    obs_shape: tuple[int, ...]  # one observation, e.g. (3,) or (10, 10, 4)
    obs_dtype: np.dtype  # as the env returns it (float32, bool, ...)
    discrete: bool  # True: Discrete actions (int32); False: a Box vector
    action_dim: int  # Box: action vector length; Discrete: number of actions
    action_low: np.ndarray | None  # Box bounds, float32 [action_dim]; None if discrete
    action_high: np.ndarray | None
    max_episode_steps: int | None  # params.max_steps_in_episode, when it has one
    # The critic's observation when it reads another key (critic_obs_key);
    # None: the critic sees what the actor sees.
    critic_obs_shape: tuple[int, ...] | None = None
    critic_obs_dtype: np.dtype | None = None

    def for_critic(self) -> EnvSpec:
        """This spec as the critic sees it: ``obs_shape``/``obs_dtype`` are the
        critic's observation's (build a critic network from this)."""
        if self.critic_obs_shape is None or self.critic_obs_dtype is None:
            return self
        return self._replace(
            obs_shape=self.critic_obs_shape,
            obs_dtype=self.critic_obs_dtype,
            critic_obs_shape=None,
            critic_obs_dtype=None,
        )


class EnvSetup(NamedTuple):
    """An environment ready for the pipeline: the object, its params, its spec."""

    env: Environment
    params: PyTree
    spec: EnvSpec


class ObservationKey:
    """Reads one key of a dict-observation environment (or two, as an
    :class:`AsymmetricObservation`, with ``critic_key``), in ``obs`` and in
    ``info["final_observation"]``; everything else passes through."""

    def __init__(self, env: Environment, key: str, critic_key: str | None = None):
        self.env = env
        self.key = key
        self.critic_key = critic_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def read(self, obs: Any) -> Any:
        if self.critic_key is None:
            return obs[self.key]
        return AsymmetricObservation(obs[self.key], obs[self.critic_key])

    def reset(self, key: jax.Array, params: PyTree) -> tuple[Observation, PyTree]:
        obs, state = self.env.reset(key, params)
        return self.read(obs), state

    def step(
        self, key: jax.Array, state: PyTree, action: jax.Array, params: PyTree
    ) -> StepResult:
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, params
        )
        final = self.read(info["final_observation"])
        return (
            self.read(obs),
            state,
            reward,
            terminated,
            truncated,
            {
                **info,
                "final_observation": final,
            },
        )

    def action_space(self, params: PyTree) -> Any:
        return self.env.action_space(params)


def describe(env: Environment) -> str:
    """``module:Class`` of an environment object (its label in messages)."""
    cls = type(env)
    return f"{cls.__module__}:{cls.__qualname__}"


def inspect_environment(
    env: Environment,
    params: PyTree,
    obs_key: str | None,
    label: str,
    critic_obs_key: str | None = None,
) -> EnvSetup:
    """``env`` as the networks read it (:func:`select_observations`), checked
    against the contract and described (:func:`check_environment`).

    Raises:
        ConfigError: one sentence naming what does not fit (``env_name``,
            ``obs_key`` or ``critic_obs_key``).
    """
    refuse = _refusal(label)
    for method in ("reset", "step", "action_space"):
        if not callable(getattr(env, method, None)):
            raise refuse(f"it has no {method} method")
    env = select_observations(env, params, obs_key, critic_obs_key, label)
    return EnvSetup(env, params, check_environment(env, params, label))


def select_observations(
    env: Environment,
    params: PyTree,
    obs_key: str | None,
    critic_obs_key: str | None,
    label: str,
) -> Environment:
    """``env`` itself when its observations are arrays; for dict observations
    an :class:`ObservationKey` reading ``obs_key`` (and ``critic_obs_key``, as
    :class:`AsymmetricObservation` s). Rewraps only; checks only the keys.

    Raises:
        ConfigError: a key that the observations lack, a missing ``obs_key``
            for dict observations, or a key given for array observations.
    """
    obs = _reset_observation(env, params, _refusal(label))
    if not isinstance(obs, Mapping):
        for name, value in (("obs_key", obs_key), ("critic_obs_key", critic_obs_key)):
            if value is not None:
                raise ConfigError(
                    name, value, f"none for {label}, whose observations are arrays"
                )
        return env
    keys = ", ".join(sorted(map(str, obs)))
    for name, value in (("obs_key", obs_key), ("critic_obs_key", critic_obs_key)):
        if value not in obs and (name == "obs_key" or value is not None):
            raise ConfigError(
                name, value, f"one of the keys of {label}'s dict observations ({keys})"
            )
    assert obs_key is not None  # checked just above
    return ObservationKey(env, obs_key, critic_obs_key)


def check_environment(env: Environment, params: PyTree, label: str) -> EnvSpec:
    """Check ``env`` (observations: arrays, or :class:`AsymmetricObservation`
    s of arrays) against the contract with one ``jax.eval_shape`` of ``reset``
    and one of ``step``; return its spec.

    Raises:
        ConfigError: one sentence (field ``env_name``) naming what is wrong.
    """
    refuse = _refusal(label)
    space = _call(refuse, "action_space(params)", lambda: env.action_space(params))
    discrete, action_dim, low, high = _action_space(space, refuse)
    obs = _reset_observation(env, params, refuse)
    asymmetric = isinstance(obs, AsymmetricObservation)
    for part in (actor_part(obs), critic_part(obs)):
        if not isinstance(part, jax.ShapeDtypeStruct):
            raise refuse(
                "observations must be arrays or dicts of arrays, not "
                f"{type(part).__name__}"
            )
    actor_obs, critic_obs = actor_part(obs), critic_part(obs)
    if discrete:
        action = jnp.zeros((), jnp.int32)
    else:
        action = jnp.zeros((action_dim,), jnp.float32)

    def one_step() -> Any:
        key = jax.random.key(0)
        _, state = env.reset(key, params)
        return env.step(key, state, action, params)

    result = _trace(refuse, "step(key, state, action, params)", one_step)
    if not isinstance(result, tuple) or len(result) != 6:
        n = len(result) if isinstance(result, tuple) else 1
        raise refuse(
            f"step returns {n} values, not 6 (obs, state, reward, terminated, "
            "truncated, info)"
        )
    next_obs, _, reward, terminated, truncated, info = result
    shape = getattr(actor_part(next_obs), "shape", None)
    if shape != actor_obs.shape:
        raise refuse(f"step's observation has shape {shape}, reset's {actor_obs.shape}")
    for name, value in (
        ("reward", reward),
        ("terminated", terminated),
        ("truncated", truncated),
    ):
        shape = getattr(value, "shape", None)
        if shape != ():
            raise refuse(
                f"step's {name} must be a scalar array, not {shape or value!r}"
            )
    final = info.get("final_observation") if isinstance(info, Mapping) else None
    if getattr(actor_part(final), "shape", None) != actor_obs.shape:
        raise refuse(
            'step\'s info must hold "final_observation" (the observation before '
            f"an auto-reset) of the observations' shape {actor_obs.shape}"
        )
    if asymmetric:
        critic_key = getattr(env, "critic_key", None)
        for what, part in (("observation", next_obs), ("final_observation", final)):
            shape = getattr(critic_part(part), "shape", None)
            if shape != critic_obs.shape:
                raise refuse(
                    f"the critic's key {critic_key!r} has shape {shape} in step's "
                    f"{what}, {critic_obs.shape} in reset's"
                )
    limit = getattr(params, "max_steps_in_episode", None)
    return EnvSpec(
        obs_shape=tuple(actor_obs.shape),
        obs_dtype=np.dtype(actor_obs.dtype),
        discrete=discrete,
        action_dim=action_dim,
        action_low=low,
        action_high=high,
        max_episode_steps=None if limit is None else int(limit),
        critic_obs_shape=tuple(critic_obs.shape) if asymmetric else None,
        critic_obs_dtype=np.dtype(critic_obs.dtype) if asymmetric else None,
    )


def _refusal(label: str) -> Callable[[str], ConfigError]:
    def refuse(what: str) -> ConfigError:
        return ConfigError(
            "env_name",
            label,
            f"an environment following the gymnax 1.x contract: {what}",
        )

    return refuse


def _reset_observation(
    env: Environment, params: PyTree, refuse: Callable[[str], ConfigError]
) -> Any:
    """The observation of a traced ``reset`` (shapes and dtypes only)."""
    reset = _trace(
        refuse, "reset(key, params)", lambda: env.reset(jax.random.key(0), params)
    )
    if not isinstance(reset, tuple) or len(reset) != 2:
        raise refuse("reset must return (obs, state)")
    return reset[0]


def _action_space(
    space: Any, refuse: Callable[[str], ConfigError]
) -> tuple[bool, int, np.ndarray | None, np.ndarray | None]:
    """``(discrete, action_dim, low, high)`` of a Discrete or 1-D Box space."""
    shape = getattr(space, "shape", None)
    if is_discrete_space(space):
        return True, int(space.n), None, None
    if hasattr(space, "low") and hasattr(space, "high") and shape is not None:
        if len(shape) == 1:
            low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
            high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
            return False, int(shape[0]), low, high
    raise refuse(
        f"actions must be Discrete or a 1-D Box; this one has "
        f"{type(space).__name__} actions of shape {shape}"
    )


def is_discrete_space(space: Any) -> bool:
    """Discrete (has ``n``, no bounds), e.g. gymnax's ``spaces.Discrete``."""
    return hasattr(space, "n") and not hasattr(space, "low")


def _call(
    refuse: Callable[[str], ConfigError], what: str, fn: Callable[[], Any]
) -> Any:
    try:
        return fn()
    except Exception as e:  # the user's code: any error becomes one sentence
        raise refuse(f"{what} failed with {error_summary(e)}") from e


def _trace(
    refuse: Callable[[str], ConfigError], what: str, fn: Callable[[], Any]
) -> Any:
    return _call(refuse, what, lambda: jax.eval_shape(fn))
