"""A run's deterministic policy as a plain function on the host: numpy
observations in, numpy actions out (what :func:`ppo_jax.load_policy` returns
and what a policy callback of :func:`ppo_jax.run_training` can build)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from ppo_jax.algo.ppo import Pipeline, RunnerState
from ppo_jax.envs.contract import PyTree, networks_part

NumpyPolicy = Callable[[np.ndarray], np.ndarray]


class RecurrentNumpyPolicy:
    """``action, state = policy(obs, state)``: a recurrent run's deterministic
    policy, which carries its memory from step to step.

    Pass ``state=None`` (or :meth:`initial_state`) at the first step of every
    episode and the returned ``state`` at the next. ``obs`` is a raw numpy
    observation ``[*obs_shape]`` or ``[batch, *obs_shape]``; ``state`` has the
    same leading axes (a batch: one episode per row, all started together).
    Actions as :func:`numpy_policy` returns them.
    """

    def __init__(self, pipeline: Pipeline, runner: RunnerState):
        self._policy = pipeline.policy
        # Trailing axes of one observation (of its first entry, for a dict).
        first = jax.tree.leaves(pipeline.spec.observation_struct())[0]
        self._obs_ndim = len(first.shape)
        self._act = jax.jit(pipeline.policy.act)
        self._params = runner.agent.actor_params
        self._stats = runner.envs.obs_stats

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> PyTree:
        """The memory at an episode start (numpy leaves ``[*batch_shape, ...]``)."""
        return jax.device_get(self._policy.initial_carry(batch_shape))

    def __call__(
        self, obs: np.ndarray, state: PyTree | None = None
    ) -> tuple[np.ndarray, PyTree]:
        obs = jax.tree.map(np.asarray, obs)  # an array, or a MaskedObservation
        if state is None:
            shape = np.shape(jax.tree.leaves(networks_part(obs))[0])
            state = self.initial_state(shape[: len(shape) - self._obs_ndim])
        action, state = self._act(self._params, self._stats, obs, state)
        return np.asarray(action), jax.device_get(state)


def numpy_policy(
    pipeline: Pipeline, runner: RunnerState
) -> NumpyPolicy | RecurrentNumpyPolicy:
    """Return ``policy(obs) -> action`` for a loaded run (deterministic), or a
    :class:`RecurrentNumpyPolicy` when its actor has memory.

    ``obs`` is a raw (unnormalized) numpy observation ``[*obs_shape]`` or
    ``[batch, *obs_shape]`` (for an env with action masks, a
    :class:`~ppo_jax.envs.contract.MaskedObservation` of it and its bool mask
    ``[(batch,) action_dim]``). For continuous actions the result is the Gaussian mean,
    float32 ``[action_dim]`` or ``[batch, action_dim]`` (unclipped, as the tutorial's
    test mode sends it, or clipped to the bounds when the run trained with
    ``clip_actions``; squashed into them with ``bounded_mean``); for discrete actions
    the most likely legal action, int32 ``[]`` or ``[batch]`` (multi-discrete:
    ``[parts]`` or ``[batch, parts]``). Needs only numpy to call.
    """
    if pipeline.policy.recurrent:
        return RecurrentNumpyPolicy(pipeline, runner)
    act = jax.jit(pipeline.policy.mode)
    params, stats = runner.agent.actor_params, runner.envs.obs_stats

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(act(params, stats, obs))

    return policy


def episode_policy(policy: NumpyPolicy | RecurrentNumpyPolicy) -> NumpyPolicy:
    """``obs -> action`` for one episode: a recurrent policy's memory is kept
    inside (a fresh one per call of this function)."""
    if not isinstance(policy, RecurrentNumpyPolicy):
        return policy
    recurrent = policy
    state: PyTree | None = None

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal state
        action, state = recurrent(obs, state)
        return action

    return act
