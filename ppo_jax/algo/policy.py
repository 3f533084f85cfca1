"""The policy: observation in, action out, one object for every use.

The rollout samples from it, the update scores stored actions with it, and
evaluation in gymnax, in gymnasium and :func:`ppo_jax.load_policy` take its
mode: so observation normalization, the action distribution (its mean squashed
into the action bounds with ``bounded_mean``) and action clipping are written
once, here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, TypeAlias

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.algo.distributions import ActionDistribution, make_action_distribution
from ppo_jax.algo.normalization import RunningMeanStd, normalize_observation
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import (
    AsymmetricObservation,
    EnvSpec,
    MaskedObservation,
    PyTree,
    action_mask_of,
    actor_part,
)
from ppo_jax.networks import ActorOutput, AnyNetwork, Network, Params
from ppo_jax.networks.memory import apply_sequence, initial_carry, network_step

# An observation batch ``[..., *obs_shape]``, a dict of entries read whole
# (structured), or with ``critic_obs_key`` an AsymmetricObservation of the
# actor's and the critic's parts, or any of these with its legal-action mask
# as a MaskedObservation; the statistics have the same structure with a
# RunningMeanStd per normalized part (``()`` for the mask and non-float
# entries).
Observation: TypeAlias = (
    jax.Array | dict[str, jax.Array] | AsymmetricObservation | MaskedObservation
)
ObservationStats: TypeAlias = (
    RunningMeanStd | dict[str, Any] | AsymmetricObservation | MaskedObservation
)


class PolicySample(NamedTuple):
    """One sampled step for ``[...]`` observations."""

    # [..., *obs_shape] what the actor saw (normalized if on); with
    # critic_obs_key an AsymmetricObservation of what actor and critic see.
    seen_obs: Observation
    # [..., action_dim] float32, [...] int32 or [..., parts] int32, as sampled
    action: jax.Array
    log_prob: jax.Array  # [...] log-probability of ``action``
    env_action: jax.Array  # ``action`` as sent to the env (clipped if on)
    carry: PyTree  # the actor's carry after this step (``()``: no memory)


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """Actor network + observation normalization + distribution + clipping."""

    actor: AnyNetwork[ActorOutput]
    distribution: ActionDistribution
    normalize_obs: bool
    action_low: np.ndarray | None  # clip bounds [action_dim]; None: no clipping
    action_high: np.ndarray | None
    # bounded_mean: the Gaussian mean is mean_middle + mean_half_width *
    # tanh(actor output), float32 [action_dim] each; None: the output itself.
    mean_middle: np.ndarray | None = None
    mean_half_width: np.ndarray | None = None

    def observe(self, obs: Observation, obs_stats: ObservationStats) -> Observation:
        """Raw observations ``[..., *obs_shape]`` -> what the networks see (both
        parts of an ``AsymmetricObservation``, each with its statistics)."""
        return normalize_observation(obs, obs_stats) if self.normalize_obs else obs

    @property
    def recurrent(self) -> bool:
        """Does the actor carry memory (act with :meth:`act`, not :meth:`mode`)?"""
        return not isinstance(self.actor, Network)

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> PyTree:
        """The actor's carry at an episode start (``()``: no memory)."""
        return initial_carry(self.actor, batch_shape)

    def bound(self, out: ActorOutput) -> ActorOutput:
        """The actor's output with its Gaussian mean squashed into the action
        bounds (``bounded_mean``); unchanged otherwise."""
        if self.mean_middle is None or self.mean_half_width is None:
            return out
        mean = self.mean_middle + self.mean_half_width * jnp.tanh(out.out)
        return out._replace(out=mean)

    def dist(
        self, params: Params, seen_obs: Observation, hp: Hyperparams
    ) -> distrax.Distribution:
        """The action distribution for already observed (``observe``) inputs
        (the actor's part of them, and their action mask); a feedforward
        actor only."""
        if not isinstance(self.actor, Network):
            raise TypeError("a recurrent actor's distribution is sequence_dist's")
        return self.distribution.dist(
            self.bound(self.actor.apply(params, actor_part(seen_obs))),
            hp,
            action_mask_of(seen_obs),
        )

    def sequence_dist(
        self,
        params: Params,
        seen_obs: Observation,
        first: jax.Array | None,
        carry: PyTree,
        hp: Hyperparams,
    ) -> distrax.Distribution:
        """The distributions of a time-major sequence ``[T, n, ...]`` of
        observed inputs, replayed from ``carry`` ``[n, ...]`` with restarts
        where ``first`` ``[T, n]`` (see
        :func:`ppo_jax.networks.memory.apply_sequence`)."""
        _, out = apply_sequence(self.actor, params, carry, actor_part(seen_obs), first)
        if out.log_std is not None and out.log_std.ndim > 1:
            # Stacked by a scan of step over time, [T, action_dim]: one row per
            # step, all the same state-independent parameter.
            out = out._replace(log_std=out.log_std[0])
        return self.distribution.dist(self.bound(out), hp, action_mask_of(seen_obs))

    def to_env(self, action: jax.Array) -> jax.Array:
        """The action the env receives: clipped to its bounds when enabled."""
        if self.action_low is None or self.action_high is None:
            return action
        return jnp.clip(action, self.action_low, self.action_high)

    def sample(
        self,
        params: Params,
        obs_stats: ObservationStats,
        obs: Observation,
        key: jax.Array,
        hp: Hyperparams,
        carry: PyTree = (),
    ) -> PolicySample:
        """Sample an action for raw observations (and the actor's ``carry``,
        already restarted where an episode begins); the sample is what is
        stored and scored, the env may get a clipped copy."""
        seen = self.observe(obs, obs_stats)
        carry, out = network_step(self.actor, params, carry, actor_part(seen))
        dist = self.distribution.dist(self.bound(out), hp, action_mask_of(seen))
        action, log_prob = dist.sample_and_log_prob(seed=key)
        return PolicySample(seen, action, log_prob, self.to_env(action), carry)

    def act(
        self,
        params: Params,
        obs_stats: ObservationStats,
        obs: Observation,
        carry: PyTree = (),
    ) -> tuple[jax.Array, PyTree]:
        """``(action, next carry)``: the deterministic action (Gaussian mean or
        most likely discrete action) for raw observations, as sent to the env.
        ``obs`` may be the actor's part alone (``load_policy``, exports;
        a MaskedObservation of it where the env masks actions); ``carry``
        starts an episode as :meth:`initial_carry`."""
        raw = jax.tree.map(jnp.asarray, actor_part(obs))
        seen: jax.Array = actor_part(self.observe(raw, actor_part(obs_stats)))
        carry, out = network_step(self.actor, params, carry, seen)
        mode = self.distribution.mode(self.bound(out), action_mask_of(obs))
        return self.to_env(mode), carry

    def mode(
        self, params: Params, obs_stats: ObservationStats, obs: Observation
    ) -> jax.Array:
        """:meth:`act` of a feedforward actor (no carry)."""
        if self.recurrent:
            raise TypeError("a recurrent policy acts with act(..., carry)")
        return self.act(params, obs_stats, obs)[0]


def make_policy(
    actor: AnyNetwork[ActorOutput], spec: EnvSpec, config: PPOConfig
) -> Policy:
    clip = config.clip_actions and not spec.discrete
    middle = half_width = None
    if config.bounded_mean and spec.action_low is not None:
        low = np.asarray(spec.action_low, np.float32)
        high = np.asarray(spec.action_high, np.float32)
        middle, half_width = (high + low) / 2, (high - low) / 2
    return Policy(
        actor=actor,
        distribution=make_action_distribution(
            spec.discrete, config.policy_std, spec.action_parts
        ),
        normalize_obs=config.normalize_obs,
        action_low=spec.action_low if clip else None,
        action_high=spec.action_high if clip else None,
        mean_middle=middle,
        mean_half_width=half_width,
    )
