"""The environment contract (gymnax 1.x) and its check before compiling.

Any object with these methods trains::

    reset(key, params) -> (obs, state)
    step(key, state, action, params)
        -> (obs, state, reward, terminated, truncated, info)
    action_space(params)   # Discrete (has .n) or a 1-D Box (.low, .high, .shape)

Discrete actions may come in parts (:class:`MultiDiscrete`, one choice of
``nvec[i]`` per part, an int32 ``[len(nvec)]`` action), and may be masked: an
environment whose observations are :class:`MaskedObservation` s tells the
policy which actions are legal in each state (illegal ones are never sampled
nor taken).

``step`` resets a finished episode by itself and puts the observation the
episode ended on (before that reset) in ``info["final_observation"]``;
``reward`` is a scalar, ``terminated``/``truncated`` scalar booleans (truncated:
ended by a time limit). ``obs`` is an array of any shape, or a dict of arrays:
the networks read one key of it (``obs_key``), and the critic may read another
(``critic_obs_key``: an asymmetric actor-critic, the critic sees privileged
observations the actor does not), or without ``obs_key`` the whole dict (a
structured observation, for a network that encodes each entry:
``--network structured``). ``state`` and ``params`` are the
environment's own pytrees; a ``params.max_steps_in_episode`` is the time limit
that ``max_episode_steps`` overrides and evaluation runs to.

:func:`inspect_environment` picks the observation keys
(:func:`select_observations`), then checks all of this with one
``jax.eval_shape`` of ``reset`` and one of ``step`` (tracing only, nothing
compiles; :func:`check_environment`) and refuses a wrong environment with one
sentence naming what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax._imports import error_summary
from ppo_jax.config.schema import ConfigError

# An environment's own state and parameter types: any pytree it chooses.
PyTree: TypeAlias = Any


class AsymmetricObservation(NamedTuple):
    """An observation read by actor and critic from two keys of a dict.

    Also the structure of their normalization statistics (one
    ``RunningMeanStd`` per part) and of everything stored per observation."""

    actor: Any  # [..., *obs_shape] what the policy reads (``obs_key``)
    critic: Any  # [..., *critic_obs_shape] what the critic reads (``critic_obs_key``)


class MaskedObservation(NamedTuple):
    """An observation with the legal actions of the state it shows.

    What an environment with action masks returns from ``reset`` and ``step``
    (and in ``info["final_observation"]``). The networks read ``obs``; the
    policy sets the logits of illegal actions to the lowest float, so they
    are never sampled nor chosen, and log-probabilities and entropy are over
    the legal actions alone."""

    obs: Any  # [..., *obs_shape] what the networks read (or its parts)
    # bool [..., action_dim]: True where an action is legal (Discrete(n):
    # [..., n]; MultiDiscrete(nvec): the parts' masks one after the other,
    # [..., sum(nvec)]). At least one legal action per state (per part).
    # In observation statistics: ``()`` (a mask is never normalized).
    action_mask: Any


# What reset and step return as an observation: an array, a dict of arrays,
# or either with its action mask.
Observation: TypeAlias = jax.Array | dict[str, jax.Array] | MaskedObservation
StepResult: TypeAlias = tuple[
    Observation, PyTree, jax.Array, jax.Array, jax.Array, dict[str, Any]
]


def networks_part(tree: Any) -> Any:
    """What the networks read of an observation (or of its statistics):
    itself without the action mask of a :class:`MaskedObservation`."""
    return tree.obs if isinstance(tree, MaskedObservation) else tree


def action_mask_of(tree: Any) -> jax.Array | None:
    """The action mask of a :class:`MaskedObservation` (None: all legal)."""
    return tree.action_mask if isinstance(tree, MaskedObservation) else None


def actor_part(tree: Any) -> Any:
    """The actor's part of an observation (or of its statistics): itself
    unless it is an :class:`AsymmetricObservation` (or masked)."""
    tree = networks_part(tree)
    return tree.actor if isinstance(tree, AsymmetricObservation) else tree


def critic_part(tree: Any) -> Any:
    """The critic's part of an observation (or of its statistics)."""
    tree = networks_part(tree)
    return tree.critic if isinstance(tree, AsymmetricObservation) else tree


class MultiDiscrete:
    """Several discrete choices at once: part ``i`` takes one of ``nvec[i]``
    values; an action is int32 ``[len(nvec)]`` (gymnasium's MultiDiscrete,
    one axis). The policy is one Categorical per part."""

    def __init__(self, nvec: Any):
        self.nvec = tuple(int(n) for n in np.asarray(nvec).reshape(-1))
        self.shape = (len(self.nvec),)
        self.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        """A uniformly random action ``[len(nvec)]``."""
        return jax.random.randint(
            key, self.shape, 0, jnp.asarray(self.nvec, jnp.int32)
        ).astype(jnp.int32)

    def contains(self, action: jax.Array) -> jax.Array:
        return jnp.all((action >= 0) & (action < jnp.asarray(self.nvec)))


def select_where(mask: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    """Leaf by leaf, ``a`` where ``mask`` holds, else ``b``. ``mask`` covers
    the leaves' leading axes: a scalar picks whole leaves, ``[N]`` picks rows
    (an env's state, an observation, a network's carry)."""
    mask = jnp.asarray(mask)

    def pick(x: jax.Array, y: jax.Array) -> jax.Array:
        lead = mask.reshape(mask.shape + (1,) * (jnp.ndim(x) - mask.ndim))
        return jnp.where(lead, x, y)

    return jax.tree.map(pick, a, b)


def reset_where_done(
    done: jax.Array,
    fresh: PyTree,
    ended: PyTree,
    observation: Callable[[PyTree], Observation],
) -> tuple[PyTree, Observation, dict[str, Observation]]:
    """The end of an auto-resetting step, for an adapter whose library state
    carries its observation: ``(next, its observation, info)``, where ``next``
    is ``fresh`` (the reset) where ``done`` holds, else ``ended`` (the state
    the step reached), and ``info["final_observation"]`` is ``ended``'s
    observation either way (the gymnax 1.x contract)."""
    after = select_where(done, fresh, ended)
    return after, observation(after), {"final_observation": observation(ended)}


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
    discrete: bool  # True: Discrete or MultiDiscrete actions (int32); False: a Box
    # Box: action vector length; Discrete: number of actions; MultiDiscrete:
    # sum(action_parts), the length of the logits (and of a mask).
    action_dim: int
    action_low: np.ndarray | None  # Box bounds, float32 [action_dim]; None if discrete
    action_high: np.ndarray | None
    max_episode_steps: int | None  # params.max_steps_in_episode, when it has one
    # The critic's observation when it reads another key (critic_obs_key);
    # None: the critic sees what the actor sees.
    critic_obs_shape: tuple[int, ...] | None = None
    critic_obs_dtype: np.dtype | None = None
    # MultiDiscrete actions: the number of choices per part (nvec); () else.
    action_parts: tuple[int, ...] = ()
    # Do observations carry a legal-action mask (MaskedObservation)?
    action_mask: bool = False
    # Dict observations read whole (no obs_key): one observation's entries,
    # {name: jax.ShapeDtypeStruct}, for a network that reads them all
    # (``--network structured``); ``obs_shape`` is then ``(total entries,)``
    # and ``obs_dtype`` float32, sizes only. None: an array observation.
    obs_structure: dict[str, jax.ShapeDtypeStruct] | None = None

    def observation_struct(self, lead: tuple[int, ...] = ()) -> Any:
        """Observations ``[*lead, ...]`` as ``jax.ShapeDtypeStruct`` s: one
        for an array observation, a dict of them for a structured one."""
        if self.obs_structure is None:
            return jax.ShapeDtypeStruct(lead + self.obs_shape, self.obs_dtype)
        return {
            k: jax.ShapeDtypeStruct(lead + tuple(v.shape), v.dtype)
            for k, v in self.obs_structure.items()
        }

    def zero_observation(self) -> Any:
        """One observation of zeros (to initialize networks with)."""
        return jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype), self.observation_struct()
        )

    @property
    def action_shape(self) -> tuple[int, ...]:
        """One action's shape: ``()`` Discrete, ``(parts,)`` MultiDiscrete,
        ``(action_dim,)`` Box."""
        if self.discrete:
            return (len(self.action_parts),) if self.action_parts else ()
        return (self.action_dim,)

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
        if isinstance(obs, MaskedObservation):
            return MaskedObservation(self.read(obs.obs), obs.action_mask)
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
    """``env`` itself when its observations are arrays, or dicts read whole
    (no ``obs_key``: structured observations); for dict observations with
    ``obs_key`` an :class:`ObservationKey` reading that key (and
    ``critic_obs_key``, as :class:`AsymmetricObservation` s). Rewraps only;
    checks only the keys.

    Raises:
        ConfigError: a key that the observations lack, ``critic_obs_key``
            without ``obs_key``, or a key given for array observations.
    """
    obs = networks_part(_reset_observation(env, params, _refusal(label)))
    if isinstance(obs, Mapping) and obs_key is None:
        if critic_obs_key is not None:
            raise ConfigError(
                "critic_obs_key",
                critic_obs_key,
                "none without obs_key (the networks read the whole dict)",
            )
        return env  # read whole: a structured observation
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
    discrete, action_dim, low, high, parts = _action_space(space, refuse)
    masked_obs = _reset_observation(env, params, refuse)
    mask = action_mask_of(masked_obs)
    if mask is not None and not discrete:
        raise refuse("action masks are for discrete actions, these are a Box")
    if mask is not None and (mask.shape, mask.dtype) != ((action_dim,), jnp.bool_):
        raise refuse(
            f"the action mask must be bool of shape ({action_dim},), one entry per "
            f"action, not {mask.dtype} of shape {mask.shape}"
        )
    obs = networks_part(masked_obs)
    asymmetric = isinstance(obs, AsymmetricObservation)
    structure = _structure(obs, refuse)
    for part in (actor_part(obs), critic_part(obs)):
        if structure is None and not isinstance(part, jax.ShapeDtypeStruct):
            raise refuse(
                "observations must be arrays or dicts of arrays, not "
                f"{type(part).__name__}"
            )
    actor_obs, critic_obs = actor_part(obs), critic_part(obs)
    reset_layout = _layout(actor_obs)
    if discrete:
        action = jnp.zeros((len(parts),) if parts else (), jnp.int32)
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
    final = info.get("final_observation") if isinstance(info, Mapping) else None
    for what, part in (("observation", next_obs), ("final_observation", final)):
        if (action_mask_of(part) is None) != (mask is None):
            masked = "reset's observations are" if mask is not None else "are not"
            raise refuse(
                f"step's {what} must be a MaskedObservation when {masked} "
                "(the same structure every time)"
            )
        step_mask = action_mask_of(part)
        if step_mask is not None and step_mask.shape != (action_dim,):
            raise refuse(
                f"the action mask in step's {what} has shape {step_mask.shape}, "
                f"not ({action_dim},)"
            )
    step_layout = _layout(actor_part(next_obs))
    if step_layout != reset_layout:
        raise refuse(
            f"step's observation has shape {step_layout}, reset's {reset_layout}"
        )
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
    if _layout(actor_part(final)) != reset_layout:
        raise refuse(
            'step\'s info must hold "final_observation" (the observation before '
            f"an auto-reset) of the observations' shape {reset_layout}"
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
    if structure is not None:  # sizes only: the entries are in obs_structure
        total = sum(math.prod(v.shape) for v in structure.values())
        obs_shape, obs_dtype = (total,), np.dtype(np.float32)
    else:
        obs_shape, obs_dtype = tuple(actor_obs.shape), np.dtype(actor_obs.dtype)
    return EnvSpec(
        obs_shape=obs_shape,
        obs_dtype=obs_dtype,
        discrete=discrete,
        action_dim=action_dim,
        action_low=low,
        action_high=high,
        max_episode_steps=None if limit is None else int(limit),
        critic_obs_shape=tuple(critic_obs.shape) if asymmetric else None,
        critic_obs_dtype=np.dtype(critic_obs.dtype) if asymmetric else None,
        action_parts=parts,
        action_mask=mask is not None,
        obs_structure=structure,
    )


def _structure(
    obs: Any, refuse: Callable[[str], ConfigError]
) -> dict[str, jax.ShapeDtypeStruct] | None:
    """A dict observation's entries ``{name: ShapeDtypeStruct}`` (sorted by
    name, as jax orders them); None for anything else."""
    if not isinstance(obs, Mapping):
        return None
    if not obs:
        raise refuse("dict observations need at least one entry")
    for name, value in obs.items():
        if not isinstance(name, str) or not isinstance(value, jax.ShapeDtypeStruct):
            raise refuse(
                "dict observations read whole must map names to arrays (entry "
                f"{name!r} is a {type(value).__name__}; obs_key picks one entry)"
            )
    return {k: jax.ShapeDtypeStruct(obs[k].shape, obs[k].dtype) for k in sorted(obs)}


def _layout(obs: Any) -> Any:
    """What must stay the same from observation to observation: the shape
    of an array, the entries' shapes of a dict (None: neither)."""
    if isinstance(obs, Mapping):
        return {k: getattr(v, "shape", None) for k, v in obs.items()}
    return getattr(obs, "shape", None)


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
) -> tuple[bool, int, np.ndarray | None, np.ndarray | None, tuple[int, ...]]:
    """``(discrete, action_dim, low, high, parts)`` of a Discrete,
    MultiDiscrete (``parts``: its ``nvec``) or 1-D Box space."""
    shape = getattr(space, "shape", None)
    if is_discrete_space(space):
        n = int(space.n)
        if n < 1:
            raise refuse(f"a Discrete space needs at least one action, not {n}")
        return True, n, None, None, ()
    if hasattr(space, "nvec") and not hasattr(space, "low"):
        nvec = np.asarray(space.nvec)
        if nvec.ndim != 1 or nvec.size == 0 or np.any(nvec < 1):
            raise refuse(
                "a MultiDiscrete space needs a flat nvec of counts of at least 1, "
                f"not {nvec.tolist()}"
            )
        parts = tuple(int(n) for n in nvec)
        return True, sum(parts), None, None, parts
    if hasattr(space, "low") and hasattr(space, "high") and shape is not None:
        if len(shape) == 1:
            low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
            high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
            return False, int(shape[0]), low, high, ()
    raise refuse(
        f"actions must be Discrete, MultiDiscrete or a 1-D Box; this one has "
        f"{type(space).__name__} actions of shape {shape}"
    )


def is_discrete_space(space: Any) -> bool:
    """Discrete (has ``n``, no bounds), e.g. gymnax's ``spaces.Discrete``."""
    return hasattr(space, "n") and not hasattr(space, "low")


def is_categorical_space(space: Any) -> bool:
    """Discrete or MultiDiscrete: the policy is Categorical (per part)."""
    return is_discrete_space(space) or (
        hasattr(space, "nvec") and not hasattr(space, "low")
    )


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
