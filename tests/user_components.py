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


# ------------------------------------------- masked, multi-part actions
class MultiDiscreteSpace(NamedTuple):
    """A space of several choices, as gymnasium's MultiDiscrete names it."""

    nvec: tuple[int, ...]


PAIR_PARTS = (3, 4)  # the pair: one of 3, then one of 4
ILLEGAL_PENALTY = -1000.0  # per illegal part: one in a rollout shows


@struct.dataclass
class PairState:
    target: jax.Array  # int32 [2]: the pair the agent must name
    legal: jax.Array  # bool [7]: part 0's 3 choices, then part 1's 4
    time: jax.Array  # int32 steps in the episode


def _draw_pair(key: jax.Array, time: jax.Array) -> PairState:
    """A target pair, legal with some others (each other choice legal with
    probability 1/2)."""
    target_key, legal_key = jax.random.split(key)
    target = jax.random.randint(target_key, (2,), 0, jnp.asarray(PAIR_PARTS))
    others = jax.random.bernoulli(legal_key, 0.5, (sum(PAIR_PARTS),))
    chosen = jnp.concatenate(
        [
            jax.nn.one_hot(t, n, dtype=jnp.bool_)
            for t, n in zip(target, PAIR_PARTS, strict=True)
        ]
    )
    return PairState(target, others | chosen, time)


def _show_pair(state: PairState):
    from ppo_jax import MaskedObservation

    seen = jnp.concatenate(
        [jax.nn.one_hot(t, n) for t, n in zip(state.target, PAIR_PARTS, strict=True)]
    )
    return MaskedObservation(seen.astype(jnp.float32), state.legal)


class MaskedPairEnv:
    """Name the pair you see, from the legal choices only: observation
    one-hot ``[3 + 4]`` of the target pair with its legal-action mask (the
    target always legal, every other choice with probability 1/2), action
    int32 ``[2]`` (MultiDiscrete (3, 4)), reward 0.5 per part named right and
    -1000 per illegal part; episodes of ``max_steps_in_episode`` (4) steps. A
    uniformly random legal policy scores about 2.1 per episode (0.58 and 0.47
    chances per part), a perfect one 4."""

    default_params = MatchParams(max_steps_in_episode=4)

    def action_space(self, params: MatchParams) -> MultiDiscreteSpace:
        return MultiDiscreteSpace(PAIR_PARTS)

    def reset(self, key: jax.Array, params: MatchParams):
        state = _draw_pair(key, jnp.zeros((), jnp.int32))
        return _show_pair(state), state

    def step(self, key: jax.Array, state: PairState, action, params: MatchParams):
        step_key, reset_key = jax.random.split(key)
        starts = jnp.asarray((0, PAIR_PARTS[0]))
        legal = state.legal[starts + action]
        reward = jnp.sum(jnp.where(action == state.target, 0.5, 0.0))
        reward += ILLEGAL_PENALTY * jnp.sum(~legal)
        stepped = _draw_pair(step_key, state.time + 1)
        truncated = stepped.time >= params.max_steps_in_episode
        fresh = _draw_pair(reset_key, jnp.zeros((), jnp.int32))
        new_state = jax.tree.map(
            lambda r, s: jnp.where(truncated, r, s), fresh, stepped
        )
        info = {"final_observation": _show_pair(stepped)}
        return (
            _show_pair(new_state),
            new_state,
            reward,
            jnp.bool_(False),
            truncated,
            info,
        )


class MaskedMatchEnv(MatchEnv):
    """MatchEnv whose observations carry a mask: the card and the next one
    (mod 4) legal; -1000 for an illegal action. A random legal policy scores 4
    of 8, a perfect one 8."""

    def _masked(self, obs: jax.Array):
        from ppo_jax import MaskedObservation

        return MaskedObservation(obs, (obs + jnp.roll(obs, 1, axis=-1)) > 0)

    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return self._masked(obs), state

    def step(self, key, state, action, params):
        legal = (action == state.card) | (action == (state.card + 1) % NUM_CARDS)
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        reward = jnp.where(legal, reward, ILLEGAL_PENALTY)
        final = self._masked(info["final_observation"])
        info = {"final_observation": final}
        return self._masked(obs), state, reward, terminated, truncated, info


# ------------------------------------------------- structured observations
class StructuredMatchEnv(MatchEnv):
    """MatchEnv seen through a dict of arrays: ``grid``, uint8 ids ``[4, 4,
    2]`` (channel 0: tile 5 across the card's row, 1 elsewhere; channel 1:
    random colour ids 0-9, noise); ``noise``, float32 ``[3]`` N(0, 10^2);
    ``lit``, bool ``[2]`` random; ``ticks``, an int32 scalar drawn from 0 to
    4999 (a counter at Jumanji's scale, noise too). The card is in the grid
    alone. Random play scores 2 of 8, a perfect policy 8."""

    def _dict(self, obs: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
        colour_key, noise_key, lit_key, tick_key = jax.random.split(key, 4)
        rows = jnp.broadcast_to(obs[:, None], (NUM_CARDS, NUM_CARDS))
        tiles = jnp.where(rows > 0, 5, 1).astype(jnp.uint8)
        colours = jax.random.randint(colour_key, (NUM_CARDS, NUM_CARDS), 0, 10)
        return {
            "grid": jnp.stack([tiles, colours.astype(jnp.uint8)], -1),
            "noise": 10.0 * jax.random.normal(noise_key, (3,)),
            "lit": jax.random.bernoulli(lit_key, 0.5, (2,)),
            "ticks": jax.random.randint(tick_key, (), 0, 5000),
        }

    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return self._dict(obs, jax.random.fold_in(key, 1)), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        final = self._dict(info["final_observation"], jax.random.fold_in(key, 2))
        seen = self._dict(obs, jax.random.fold_in(key, 3))
        return seen, state, reward, terminated, truncated, {"final_observation": final}


class MaskedStructuredMatchEnv(StructuredMatchEnv):
    """StructuredMatchEnv with MaskedMatchEnv's mask (the card and the next
    one legal; -1000 for an illegal action)."""

    def reset(self, key, params):
        obs, state = super().reset(key, params)
        return self._mask(obs, state.card), state

    def _mask(self, obs, card):
        from ppo_jax import MaskedObservation

        legal = jnp.arange(NUM_CARDS)
        return MaskedObservation(
            obs, (legal == card) | (legal == (card + 1) % NUM_CARDS)
        )

    def step(self, key, state, action, params):
        legal = (action == state.card) | (action == (state.card + 1) % NUM_CARDS)
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        # MatchEnv shows a new card every step: the final observation showed
        # the card drawn before a reset, which the grid still holds.
        final_card = jnp.argmax(info["final_observation"]["grid"][:, 0, 0] == 5)
        final = self._mask(info["final_observation"], final_card)
        reward = jnp.where(legal, reward, ILLEGAL_PENALTY)
        return (
            self._mask(obs, state.card), state, reward, terminated, truncated,
            {"final_observation": final},
        )  # fmt: skip
