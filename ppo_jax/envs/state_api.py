"""brax-style environments (``reset(rng) -> State``, ``step(State, action) ->
State``) under the gymnax 1.x contract of :mod:`ppo_jax.envs.contract`.

brax's environments and MuJoCo Playground's both step a ``State`` with
``obs``, ``reward`` and ``done`` and leave episodes to wrappers of their
training code, whose auto-reset discards the observation an episode ended on.
:class:`StateEnv` does the episode bookkeeping itself, the way PPO needs it:

- **time limit** in agent steps (``params.max_steps_in_episode``, which
  ``max_episode_steps`` overrides); the end it causes is *truncated*, while the
  env's own ``done`` is *terminated*: ``bootstrap_truncation`` then works as
  on gymnax;
- **auto-reset** from the step's key, with the observation the episode ended on
  (before the reset) in ``info["final_observation"]``;
- **action repeat**: each agent step is ``action_repeat`` env steps with the
  same action, rewards summed, stopping early at a terminal state.

Actions are the env's ``[-1, 1]`` box. Costs: the reset is computed on every
step (under ``vmap`` both branches of a select run), as gymnax does too.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import serialization, struct
from gymnax.environments import spaces

from ppo_jax.envs.contract import PyTree, StepResult, reset_where_done, select_where


class BraxStyleEnv(Protocol):
    """What :class:`StateEnv` wraps (brax ``Env``, Playground ``MjxEnv``)."""

    def reset(self, rng: jax.Array) -> Any: ...

    def step(self, state: Any, action: jax.Array) -> Any: ...

    @property
    def action_size(self) -> int: ...

    @property
    def dt(self) -> float | jax.Array: ...  # seconds per env step (rendering)


@struct.dataclass
class StateEnvParams:
    max_steps_in_episode: int  # agent steps (env steps / action_repeat)


@struct.dataclass
class StateEnvState:
    inner: PyTree  # the wrapped env's State
    steps: jax.Array  # int32 agent steps taken in this episode


def _state_to_dict(state: StateEnvState) -> dict[str, Any]:
    # The wrapped State holds types flax cannot serialize (MJX's Data): store
    # its leaves by position; the structure comes back from the template.
    leaves = jax.tree.leaves(state.inner)
    return {"inner": {str(i): x for i, x in enumerate(leaves)}, "steps": state.steps}


def _state_from_dict(target: StateEnvState, saved: dict[str, Any]) -> StateEnvState:
    leaves, treedef = jax.tree.flatten(target.inner)
    stored = saved["inner"]
    if len(stored) != len(leaves):
        raise ValueError(
            f"the env state has {len(stored)} arrays, this environment {len(leaves)}"
        )
    inner = jax.tree.unflatten(treedef, [stored[str(i)] for i in range(len(leaves))])
    return StateEnvState(inner=inner, steps=saved["steps"])


serialization.register_serialization_state(
    StateEnvState, _state_to_dict, _state_from_dict, override=True
)


class StateEnv:
    """A brax-style env as a gymnax 1.x environment (see the module docstring)."""

    def __init__(
        self, env: BraxStyleEnv, max_steps_in_episode: int, action_repeat: int = 1
    ):
        self.env = env
        self.max_steps = int(max_steps_in_episode)
        self.action_repeat = int(action_repeat)

    @property
    def default_params(self) -> StateEnvParams:
        return StateEnvParams(max_steps_in_episode=self.max_steps)

    def action_space(self, params: PyTree = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.env.action_size,), jnp.float32)

    def reset(self, key: jax.Array, params: PyTree) -> tuple[PyTree, StateEnvState]:
        inner = self.env.reset(key)
        return inner.obs, StateEnvState(inner=inner, steps=jnp.zeros((), jnp.int32))

    def _repeat(self, inner: Any, action: jax.Array) -> tuple[Any, jax.Array]:
        """``action_repeat`` env steps; rewards summed up to a terminal state."""
        if self.action_repeat == 1:
            inner = self.env.step(inner, action)
            return inner, inner.reward

        def one(carry: tuple[Any, jax.Array], _: None) -> tuple[Any, None]:
            state, total = carry
            ended = state.done > 0
            stepped = self.env.step(state, action)
            total = total + jnp.where(ended, 0.0, stepped.reward)
            return (select_where(ended, state, stepped), total), None

        zero = jnp.zeros((), jnp.float32)
        (inner, total), _ = jax.lax.scan(
            one, (inner, zero), None, length=self.action_repeat
        )
        return inner, total

    def step(
        self, key: jax.Array, state: StateEnvState, action: jax.Array, params: PyTree
    ) -> StepResult:
        inner, reward = self._repeat(state.inner, action)
        steps = state.steps + 1
        terminated = inner.done > 0
        truncated = (steps >= params.max_steps_in_episode) & ~terminated
        done = terminated | truncated
        fresh = self.env.reset(key)
        next_inner, obs, info = reset_where_done(done, fresh, inner, lambda s: s.obs)
        next_state = StateEnvState(
            inner=next_inner, steps=jnp.where(done, 0, steps).astype(jnp.int32)
        )
        reward = jnp.asarray(reward, jnp.float32)
        return obs, next_state, reward, terminated, truncated, info


def headless_opengl_default() -> None:
    """``MUJOCO_GL=egl`` unless set: MuJoCo reads it once, when first imported
    (the Playground and brax families call this before importing them), and
    its own default (GLFW) needs a display."""
    os.environ.setdefault("MUJOCO_GL", "egl")
