"""The NAVIX family: ``navix/<name>``, MiniGrid's grid worlds re-implemented
in JAX (Pignatelli et al., 2024), every environment navix registers.

Optional extra: ``pip install -e '.[navix]'`` (``navix>=0.7.4,<0.8``).

Tasks: the 41 names of ``navix.registry()`` in navix 0.7.4, e.g.
``Navix-Empty-5x5-v0``, ``Navix-Empty-Random-8x8-v0``, ``Navix-DoorKey-8x8-v0``,
``Navix-FourRooms-v0``, ``Navix-LavaGapS7-v0``,
``Navix-Dynamic-Obstacles-6x6-v0``, ``Navix-KeyCorridorS3R1-v0``,
``Navix-SimpleCrossingS9N1-v0``. Other names are refused with the closest
navix names; MiniGrid's are compared as navix's (``MiniGrid-Empty-5x5-v0``:
did you mean ``Navix-Empty-5x5-v0``), and the MiniGrid tasks navix lists as
not implemented (``MiniGrid-LockedRoom-v0``, ...) are named as such.
Everything builds offline: nothing is downloaded.

Observations: navix's default, kept as it gives them: the *fully observable
symbolic grid*, uint8 ``[H, W, 3]`` (one MiniGrid triple per cell: object
tag, colour index, state: open/closed/locked doors, the player's direction),
``H x W`` the whole map with its walls (``(5, 5, 3)`` for Empty-5x5,
``(19, 19, 3)`` for FourRooms). Not MiniGrid's 7x7 first-person view: navix
builds that (and RGB images) only when asked for another observation
function, which this family does not do. ppo_jax's networks cast to float32
themselves; ``network=cnn`` reads the grid as an image of 3 channels.

Actions: ``Discrete(7)``, MiniGrid's set: 0 turn left, 1 turn right, 2 forward,
3 pick up, 4 drop, 5 toggle, 6 done. Rewards: navix's, float32: 1 when the
task is done (the goal reached; GoToDoor: ``done`` in front of the named door),
else 0. Unlike MiniGrid, no discount for slowness (the discount factor alone
rewards short paths), and no -1 for a collision in Dynamic-Obstacles (it only
ends the episode).

Episodes: navix's termination (goal reached, lava, a hit by an obstacle, ...)
is *terminated*; the time limit is *truncated*. The limit is navix's own
``max_steps`` as ``navix.make`` sets it: 100 steps for every task (not
MiniGrid's per-task limits), ``params.max_steps_in_episode``, which
``max_episode_steps`` overrides and evaluation runs to.

navix's ``step`` resets an episode one call *after* it ended (the ended
``Timestep`` is returned first, and the next call ignores its action and
resets), which does not fit the gymnax contract. :class:`NavixEnv` steps
navix's transition without that reset (``Environment._step``), reads
terminated from its ``step_type`` and applies the time limit itself from the
``Timestep``'s step count, then resets a finished episode from the step's key
in the same call, with the ended observation in ``info["final_observation"]``.
navix's own randomness within an episode (moving obstacles) comes from the key
navix keeps in its state, seeded by the reset, as in navix itself: a trajectory
from a reset key and fixed actions is navix's own, step for step.

Costs: the reset is computed on every step (under ``vmap`` both sides of a
select run), as gymnax does too, with the rendering cache of the state passed
on (as navix's own auto-reset does) rather than built again;
``benchmarks/family_speed.py`` compares it with navix's own ``step``. The
env state is navix's whole ``Timestep``, including the tile images navix
keeps for RGB rendering (uint8, ``(H * W + 1) x 8 x 8 x 3``: 5 KB per env for
a 5x5 grid), which the symbolic observation never reads.
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

MINIGRID = "MiniGrid-"


@struct.dataclass
class NavixParams:
    max_steps_in_episode: int  # agent steps before an episode is truncated


@struct.dataclass
class NavixState:
    # navix's Timestep of the current step: its ``t`` (int32, steps since the
    # reset) counts toward the time limit, its ``state`` is the grid world
    # (with navix's own PRNG key).
    timestep: Any


class NavixEnv:
    """A navix ``Environment`` under the gymnax 1.x contract (see the module
    docstring): observations are navix's (uint8 ``[H, W, 3]`` for its default
    symbolic grid), rewards float32 scalars, terminated/truncated bool scalars."""

    def __init__(self, env: Any, name: str):
        self.env = env  # a navix.Environment (a frozen flax struct)
        self.name = name

    @property
    def default_params(self) -> NavixParams:
        return NavixParams(max_steps_in_episode=int(self.env.max_steps))

    @property
    def num_actions(self) -> int:
        return len(self.env.action_set)

    def action_space(self, params: PyTree = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def reset(self, key: jax.Array, params: PyTree) -> tuple[Observation, NavixState]:
        timestep = self.env.reset(key)
        return timestep.observation, NavixState(timestep=timestep)

    def step(
        self, key: jax.Array, state: NavixState, action: jax.Array, params: PyTree
    ) -> StepResult:
        # The transition alone: navix's public step would reset a finished
        # episode one call later, and only from the key in its state.
        action = jnp.asarray(action, jnp.int32)  # as navix's reset stores it
        ended = self.env._step(state.timestep, action)
        terminated = jnp.asarray(ended.is_termination(), jnp.bool_)
        # navix marks truncation at its own max_steps; the params' limit rules.
        at_limit = ended.t >= params.max_steps_in_episode
        truncated = jnp.logical_and(at_limit, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        # The step's key has one use: the reset of a finished episode. The
        # rendering cache (tile images that depend on the grid's size only) is
        # passed on as navix's own step does: rebuilt in every step, it halved
        # the adapter's speed (DoorKey-5x5, 1024 envs).
        fresh = self.env.reset(key, state.timestep.state.cache)
        # navix's step types as this step ended: 0 transition, 1 truncation
        # (the params' limit), 2 termination.
        step_type = 2 * terminated.astype(jnp.int32) + truncated.astype(jnp.int32)
        ended = ended.replace(step_type=step_type)
        next_timestep, obs, info = reset_where_done(
            done, fresh, ended, lambda t: t.observation
        )
        reward = jnp.asarray(ended.reward, jnp.float32)
        return (
            obs,
            NavixState(timestep=next_timestep),
            reward,
            terminated,
            truncated,
            info,
        )


def make(task: str, label: str, backend: str | None) -> tuple[NavixEnv, NavixParams]:
    """``(NavixEnv, params)`` of navix's ``task``; one sentence on errors.

    Raises:
        ConfigError: navix not installed, an unknown name (with the closest
            navix names) or any ``env_backend``.
    """
    require_extra("navix", "NAVIX", "navix", label)
    navix = importlib.import_module("navix")
    names = sorted(navix.registry())
    if task not in names:
        raise ConfigError(
            "env_name",
            label,
            f"a NAVIX environment, one of the {len(names)} names navix registers "
            f"such as Navix-Empty-5x5-v0{_hint(task, names, navix)}",
        )
    refuse_backend(backend, label, "NAVIX")
    env = NavixEnv(navix.make(task), task)
    return env, env.default_params


def _hint(task: str, names: list[str], navix: Any) -> str:
    """The closest navix names to an unknown ``task`` (MiniGrid's names compared
    as navix's: ``MiniGrid-Empty-5x5-v0`` suggests ``Navix-Empty-5x5-v0``), or
    that navix lists it among the MiniGrid tasks it does not implement."""
    missing = getattr(navix.environments.registry, "NotImplementedEnvs", ())
    if task in missing:
        return f" ({task} is a MiniGrid task that navix does not implement)"
    if task.startswith(MINIGRID):
        task = "Navix-" + task.removeprefix(MINIGRID)
    return did_you_mean(task, names)
