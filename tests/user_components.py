"""A user's own environment and networks, written here from no RL library.

Importable as ``user_components`` by the tests (and by the CLI's ``--env
user_components:MatchEnv`` / ``--network user_components:linear_networks``
with this folder on PYTHONPATH). Also malformed variants, each with one thing
wrong, for the refusal tests.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax import ActorCritic, ActorOutput, flax_network


class Box(NamedTuple):
    low: float
    high: float
    shape: tuple[int, ...]


class Discrete(NamedTuple):
    n: int


NUM_CARDS = 4


@struct.dataclass
class MatchParams:
    max_steps_in_episode: int = 8


@struct.dataclass
class MatchState:
    card: jax.Array  # int32 in [0, NUM_CARDS): what the agent must name
    time: jax.Array  # int32 steps in the episode


def _draw(key: jax.Array, time: jax.Array) -> MatchState:
    return MatchState(jax.random.randint(key, (), 0, NUM_CARDS), time)


def _show(state: MatchState) -> jax.Array:
    return jax.nn.one_hot(state.card, NUM_CARDS, dtype=jnp.float32)


class MatchEnv:
    """Name the card you see: observation one-hot ``[4]``, action the card's
    index, reward 1 when right; a new card every step, episodes of
    ``max_steps_in_episode`` (8) steps. A uniform random policy scores 2 per
    episode, a perfect one 8."""

    default_params = MatchParams()

    def observation_space(self, params: MatchParams) -> Box:
        return Box(0.0, 1.0, (NUM_CARDS,))

    def action_space(self, params: MatchParams) -> Discrete:
        return Discrete(NUM_CARDS)

    def reset(self, key: jax.Array, params: MatchParams):
        state = _draw(key, jnp.zeros((), jnp.int32))
        return _show(state), state

    def step(self, key: jax.Array, state: MatchState, action, params: MatchParams):
        step_key, reset_key = jax.random.split(key)
        reward = jnp.where(action == state.card, 1.0, 0.0)
        stepped = _draw(step_key, state.time + 1)
        truncated = stepped.time >= params.max_steps_in_episode
        reset_state = _draw(reset_key, jnp.zeros((), jnp.int32))
        new_state = jax.tree.map(
            lambda r, s: jnp.where(truncated, r, s), reset_state, stepped
        )
        obs = _show(new_state)
        info = {"final_observation": _show(stepped)}
        return obs, new_state, reward, jnp.bool_(False), truncated, info


@struct.dataclass
class EndlessParams:
    deck_size: int = NUM_CARDS  # no max_steps_in_episode: no time limit


class EndlessMatch(MatchEnv):
    """MatchEnv without a time limit in its params (its episodes never end):
    nothing to evaluate to."""

    default_params = EndlessParams()

    def step(self, key, state, action, params):
        obs, state, reward, terminated, _, info = super().step(
            key, state, action, MatchParams(max_steps_in_episode=2**30)
        )
        return obs, state, reward, terminated, jnp.bool_(False), info


# ------------------------------------------------------------ malformed envs
class FiveValueStep(MatchEnv):
    """The gym 0.26 / gymnax 0.x habit: no truncated flag."""

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        return obs, state, reward, terminated | truncated, info


class NoFinalObservation(MatchEnv):
    def step(self, key, state, action, params):
        *values, _ = super().step(key, state, action, params)
        return (*values, {})


class VectorReward(MatchEnv):
    """One reward per card instead of a scalar."""

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        return obs, state, reward * jnp.ones(NUM_CARDS), terminated, truncated, info


class MatrixActions(MatchEnv):
    def action_space(self, params):
        return Box(-1.0, 1.0, (2, 2))


class DictObservations(MatchEnv):
    """Observations ``{"state": one-hot [4], "noise": [3]}``."""

    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return {"state": obs, "noise": jnp.zeros(3)}, state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        final = {"state": info["final_observation"], "noise": jnp.ones(3)}
        return (
            {"state": obs, "noise": jnp.ones(3)},
            state, reward, terminated, truncated, {"final_observation": final},
        )  # fmt: skip


class PrivilegedMatch(MatchEnv):
    """Observations ``{"state": one-hot card [4], "privileged_state": [2]}``:
    the privileged part is ``(time, 1 - time) / max_steps``, which tells how
    many rewards are left in the episode (the value) but nothing of the card
    (the action)."""

    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return self._dict(obs, state, params), state

    def step(self, key, state, action, params):
        obs, new_state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        stepped = state.replace(time=state.time + 1)
        final = self._dict(info["final_observation"], stepped, params)
        return (
            self._dict(obs, new_state, params),
            new_state, reward, terminated, truncated, {"final_observation": final},
        )  # fmt: skip

    @staticmethod
    def _dict(obs, state: MatchState, params: MatchParams):
        elapsed = state.time.astype(jnp.float32) / params.max_steps_in_episode
        return {"state": obs, "privileged_state": jnp.stack([elapsed, 1 - elapsed])}


# ------------------------------------------------------------------ networks
class LinearActor(nn.Module):
    action_dim: int

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[:-1] + (-1,)).astype(jnp.float32)
        return ActorOutput(nn.Dense(self.action_dim, name="logits")(x), None)


class LinearCritic(nn.Module):
    @nn.compact
    def __call__(self, obs):
        return nn.Dense(1, name="value")(obs.astype(jnp.float32))[..., 0]


def linear_networks(spec, config) -> ActorCritic:
    """A user's factory: one linear layer each, for discrete actions."""
    return ActorCritic(
        actor=flax_network(LinearActor(spec.action_dim), spec),
        critic=flax_network(LinearCritic(), spec),
    )


def too_wide_networks(spec, config) -> ActorCritic:
    """Malformed: one logit too many."""
    return ActorCritic(
        actor=flax_network(LinearActor(spec.action_dim + 1), spec),
        critic=flax_network(LinearCritic(), spec),
    )


def tuple_networks(spec, config):
    """Malformed: a tuple of flax modules, not an ActorCritic."""
    return LinearActor(spec.action_dim), LinearCritic()


def failing_networks(spec, config):
    """Malformed: the factory itself raises."""
    raise RuntimeError("no GPU found for my network")
