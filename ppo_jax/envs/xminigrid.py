"""The XLand-MiniGrid family: ``xminigrid/<name>``, MiniGrid's grid worlds and
XLand's rule-driven worlds in JAX (Nikulin et al., NeurIPS 2024).

Optional extra: ``pip install -e '.[xminigrid]'`` (``xminigrid>=0.9.3,<0.10``).

Tasks that build offline: the 23 ``MiniGrid-*`` ports of
``xminigrid.registered_environments()`` (xminigrid 0.9.3), e.g.
``MiniGrid-Empty-5x5``, ``MiniGrid-EmptyRandom-8x8``, ``MiniGrid-DoorKey-8x8``,
``MiniGrid-FourRooms``, ``MiniGrid-LockedRoom``, ``MiniGrid-MemoryS8``,
``MiniGrid-Unlock``; their goals are written into xminigrid's code.
``MiniGrid-Playground`` builds too but, as MiniGrid's own Playground, has no
goal: its reward is always 0 and only the time limit ends an episode.

Refused: the 21 ``XLand-MiniGrid-R*`` tasks (``XLand-MiniGrid-R1-9x9``, ...).
Their goal, rules and objects are a *ruleset* drawn from a benchmark
(``trivial-21k``, ``small-1m``, ...) that ``xminigrid.load_benchmark``
downloads from Hugging Face; ppo_jax never downloads at run time, and no
ruleset ships in the package (xminigrid's default is an empty one: no goal, no
objects, never a reward), so they are refused before anything is built.

Observations: xminigrid's own, kept as it gives them: the agent's
first-person view, uint8 ``[V, V, 2]`` (per cell: tile id 0-12, colour id
0-11), turned so the agent faces up from the middle of the bottom row;
transparent (walls do not hide what is behind them). ``V`` is the task's
``view_size``: 7 for the MiniGrid ports, 3 for ``MiniGrid-Memory*``. The
agent's direction and what it carries are not in it (xminigrid's wrappers
add them as dict observations; this family does not). ppo_jax's networks
cast to float32 themselves; ``network=cnn`` reads the view as an image of 2
channels.

Actions: ``Discrete(6)``: 0 forward, 1 turn right, 2 turn left, 3 pick up,
4 put down, 5 toggle (``MiniGrid-Memory*`` turns pick up into toggle).
Rewards: float32, ``1 - 0.9 * steps / max_steps`` on reaching the goal
(``steps`` taken in the episode, the goal step included), else 0; terminated
by the goal (or, in ``Memory``, by the wrong object), truncated by the limit.

Time limit: xminigrid's ``max_steps`` (MiniGrid's per-task formulas: 100 for
Empty-5x5, 640 for DoorKey-8x8, ...) is ``params.max_steps_in_episode``,
which ``max_episode_steps`` overrides and evaluation runs to. It is passed
back to xminigrid as its ``max_steps``, so the run is xminigrid's env with
that limit (``xminigrid.make(name, max_steps=...)``): the reward's scale above
follows it. As xminigrid's own ``max_steps`` it is a static field (not an
array): a new limit compiles a new program and params cannot be vmapped over
limits.

xminigrid's ``step`` does not reset: it marks the last step of an episode
with ``step_type == LAST``, ``discount == 0`` when the goal ended it and
``discount == 1`` when the limit did (its wrappers reset either in the same
call, dropping the final observation, or one call later).
:class:`XMiniGridEnv` calls that step, reads terminated and truncated from
the discount, and resets a finished episode in the same call from the step's
key (its only use: xminigrid's transitions take no randomness), with the
observation the episode ended on in ``info["final_observation"]``.

Costs: the reset is computed on every step (under ``vmap`` both sides of a
select run), as gymnax does too and as xminigrid's own
``GymAutoResetWrapper`` does (its ``lax.cond`` becomes a select under
``vmap``). Generating a world costs several bare steps: on Empty-5x5, 1024
envs vmapped, a jitted scan of 100 steps ran at about 1.1M steps/s, against
5.4M for xminigrid's bare step without resets and 1.1M for its wrapper (2
CPU cores shared with other work).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Observation, PyTree, StepResult, reset_where_done
from ppo_jax.envs.refusals import did_you_mean, refuse_backend, require_extra

# xminigrid names whose task is a ruleset from a downloaded benchmark.
RULESET_PREFIX = "XLand-MiniGrid"


@struct.dataclass
class XMiniGridParams:
    # xminigrid's EnvParams (grid and view sizes: static fields); its
    # max_steps is replaced by the limit below when stepping.
    inner: Any
    # Agent steps before an episode is truncated (xminigrid's max_steps):
    # static, as there, since xminigrid's step reads it as a Python int.
    max_steps_in_episode: int = struct.field(pytree_node=False)


@struct.dataclass
class XMiniGridState:
    # xminigrid's TimeStep of the current step: its ``state.step_num`` (int32,
    # steps since the reset) counts toward the limit, its ``state.grid``
    # (uint8 [H, W, 2]) and ``state.agent`` are the world.
    timestep: Any


class XMiniGridEnv:
    """An xminigrid ``Environment`` under the gymnax 1.x contract (see the
    module docstring): observations uint8 ``[V, V, 2]`` (tile and colour ids
    of the agent's view), actions ``Discrete(6)``, rewards float32 scalars,
    terminated (goal) and truncated (time limit) bool scalars."""

    def __init__(self, env: Any, env_params: Any, name: str):
        self.env = env  # an xminigrid.environment.Environment
        self.env_params = env_params  # its default EnvParams
        self.name = name

    @property
    def default_params(self) -> XMiniGridParams:
        return XMiniGridParams(
            inner=self.env_params,
            max_steps_in_episode=int(self.env_params.max_steps),
        )

    def _inner(self, params: XMiniGridParams) -> Any:
        """xminigrid's params with the limit of ``params`` as its max_steps."""
        return params.inner.replace(max_steps=int(params.max_steps_in_episode))

    def action_space(self, params: PyTree = None) -> spaces.Discrete:
        inner = self.env_params if params is None else params.inner
        return spaces.Discrete(int(self.env.num_actions(inner)))

    def observation_space(self, params: PyTree = None) -> spaces.Box:
        inner = self.env_params if params is None else params.inner
        shape = tuple(self.env.observation_shape(inner))
        return spaces.Box(0, 255, shape, jnp.uint8)

    def reset(
        self, key: jax.Array, params: XMiniGridParams
    ) -> tuple[Observation, XMiniGridState]:
        timestep = self.env.reset(self._inner(params), key)
        return timestep.observation, XMiniGridState(timestep=timestep)

    def step(
        self,
        key: jax.Array,
        state: XMiniGridState,
        action: jax.Array,
        params: XMiniGridParams,
    ) -> StepResult:
        inner = self._inner(params)
        ended = self.env.step(inner, state.timestep, action)
        # xminigrid: LAST ends an episode; discount 0 the goal, 1 the limit.
        last = ended.last()
        terminated = jnp.logical_and(last, ended.discount == 0)
        truncated = jnp.logical_and(last, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        # The step's key has one use: the reset of a finished episode.
        fresh = self.env.reset(inner, key)
        next_timestep, obs, info = reset_where_done(
            done, fresh, ended, lambda t: t.observation
        )
        reward = jnp.asarray(ended.reward, jnp.float32)
        return (
            obs,
            XMiniGridState(timestep=next_timestep),
            reward,
            terminated,
            truncated,
            info,
        )


def make(
    task: str, label: str, backend: str | None
) -> tuple[XMiniGridEnv, XMiniGridParams]:
    """``(XMiniGridEnv, params)`` of xminigrid's ``task``; one sentence on errors.

    Raises:
        ConfigError: xminigrid not installed, an unknown name (with the closest
            registered names), an ``XLand-MiniGrid-R*`` task (its ruleset must
            be downloaded; refused before building) or any ``env_backend``.
    """
    require_extra("xminigrid", "XLand-MiniGrid", "xminigrid", label)
    xminigrid = importlib.import_module("xminigrid")
    names = list(xminigrid.registered_environments())
    if task not in names:
        hint = did_you_mean(task, names)
        raise ConfigError(
            "env_name",
            label,
            f"an XLand-MiniGrid environment, one of the {len(names)} names "
            f"xminigrid registers such as MiniGrid-Empty-5x5{hint}",
        )
    if task.startswith(RULESET_PREFIX):
        raise ConfigError(
            "env_name",
            label,
            f"a task that builds offline: {task} needs a ruleset (its goal and "
            "rules) from a benchmark that xminigrid downloads (load_benchmark) "
            "and ppo_jax does not (the MiniGrid-* tasks build offline)",
        )
    refuse_backend(backend, label, "XLand-MiniGrid")
    env, env_params = xminigrid.make(task)
    wrapped = XMiniGridEnv(env, env_params, task)
    return wrapped, wrapped.default_params
