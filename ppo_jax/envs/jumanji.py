"""The Jumanji family: ``jumanji/<name>``, InstaDeep's combinatorial puzzles,
packing, routing and multi-agent grid tasks in JAX (Bonnet et al., ICLR 2024).

Optional extra: ``pip install -e '.[jumanji]'`` (``jumanji>=1.1.2,<1.2``).

Tasks: 24 of the 26 names of ``jumanji.registered_environments()`` (jumanji
1.1.2), everything they need ships in the package (Sudoku's puzzles too).
Refused, with one sentence: ``Sokoban-v0``, whose generator downloads the
Boxoban levels from Hugging Face when it is built (refused before building:
ppo_jax never downloads at run time), and ``SearchAndRescue-v0``, whose
actions are a float Box of shape ``(searchers, 2)`` (the policy serves 1-D
Boxes; flattening it to ``(4,)`` would serve it, but is not done).

==================================  ================  ======  ===================
task (default limit)                actions           mask    ``obs_key``
==================================  ================  ======  ===================
``Game2048-v1`` (4000*)             Discrete(4)       yes     ``board`` (whole)
``Snake-v1`` (4000)                 Discrete(4)       yes     ``grid`` (whole)
``Minesweeper-v0`` (4000*)          Discrete(100) J   joint   ``board`` (whole)
``Sudoku-v0`` (4000*)               Discrete(729) J   joint   ``board`` (whole)
``Sudoku-very-easy-v0`` (4000*)     Discrete(729) J   joint   ``board`` (whole)
``RubiksCube-v0`` (200)             MD(6, 1, 3)       no      ``cube`` (whole)
``RubiksCube-partly-scrambled-v0``  MD(6, 1, 3)       no      ``cube`` (whole)
``SlidingTilePuzzle-v0`` (500)      Discrete(4)       yes     ``puzzle`` (whole)
``Connector-v3`` (50)               MD(5 x 10) A      parts   ``grid`` (whole)
``LevelBasedForaging-v0`` (100)     MD(6, 6) A        parts   ``agents_view`` (whole)
``RobotWarehouse-v0`` (500)         MD(5 x 4) A       parts   ``agents_view`` (local)
``Tetris-v0`` (400)                 Discrete(40) J    joint   ``grid`` (no piece)
``Maze-v0`` (100)                   Discrete(4)       yes     ``walls`` (no agent,
                                                              no target)
``PacMan-v1`` (1000)                Discrete(5)       yes     ``grid`` (walls only)
``Cleaner-v0`` (100)                MD(4, 4, 4) A     parts   ``grid`` (no agents)
``MMST-v0`` (70)                    MD(36 x 3) A      parts   ``adj_matrix`` (part)
``GraphColoring-v1`` (4000*)        Discrete(20)      yes     ``adj_matrix`` (part)
``TSP-v1`` (4000*)                  Discrete(20)      yes     ``coordinates`` (part)
``CVRP-v1`` (4000*)                 Discrete(21)      yes     ``coordinates`` (part)
``MultiCVRP-v0`` (4000*)            MD(21, 21) A      parts   ``nodes.coordinates``
                                                              (part)
``Knapsack-v1`` (4000*)             Discrete(50)      yes     ``values`` (part)
``JobShop-v0`` (4000*)              MD(21 x 10)       parts   ``ops_machine_ids``
                                                              (part)
``BinPack-v2`` (4000*)              Discrete(800) J   joint   ``items_placed`` (part)
``FlatPack-v0`` (4000*)             Discrete(8100) J  joint   ``grid`` (no blocks)
==================================  ================  ======  ===================

(``MD``: :class:`~ppo_jax.envs.contract.MultiDiscrete`, ``5 x 10`` ten parts of
5; ``A``: one part per agent; ``J``: jumanji's MultiDiscrete flattened into one
Discrete, see masks; ``*``: no limit of jumanji's own, ppo_jax's default;
RubiksCube-partly-scrambled's limit is 20.)

Observations: jumanji's observation (a NamedTuple) as a dict of its fields,
each an array as jumanji gives it (int32 boards, float32 grids, bool masks,
int32 scalars such as ``step_count``); fields of nested NamedTuples are named
with dots (``agent_position.row``, ``ems.x1``, ``nodes.coordinates``). The
``action_mask`` field is not in the dict: observations are
:class:`~ppo_jax.envs.contract.MaskedObservation` s of it (plain dicts for
RubiksCube, which has none), so the policy never samples an illegal action.
With ``obs_key`` the networks read that one key (the table's last column,
:data:`MAIN_KEYS`; a key the task lacks is refused with the list of its
keys); "whole" marks tasks where it shows the whole state ("local": each
agent's own sensor view, as RobotWarehouse intends), the others also need
fields it lacks (Maze's positions, Tetris's ``tetromino``, the routing
tasks' positions and trajectories) and learn little from one key alone.
Without ``obs_key`` the whole dict is the observation, for a network that
reads every entry (``--network structured``). The networks cast to float32
themselves.

Actions and masks, per jumanji's action spec:

- ``DiscreteArray(n)``: ``Discrete(n)``, the mask ``[n]`` as it is.
- ``MultiDiscreteArray(nvec)`` with one mask row per entry (``[len(nvec),
  max(nvec)]``: an agent's, a machine's or a vehicle's choices):
  ``MultiDiscrete(nvec)``, int32 ``[len(nvec)]``, one Categorical per part,
  the rows one after the other. A multi-agent task is then played by one
  policy picking every agent's move at once (centralised). The parts' masks
  say what each agent may do alone, not what combinations collide: jumanji's
  rules settle those (RobotWarehouse ends the episode on a collision,
  MultiCVRP sends the second of two vehicles bound for one customer to the
  depot; JobShop's jobs are legal on one machine each, so nothing collides).
- ``MultiDiscreteArray(nvec)`` with one mask over the joint actions (mask
  shape ``nvec``: Tetris's rotation x column, Minesweeper's row x column,
  Sudoku's row x column x digit, BinPack's space x item, FlatPack's block x
  rotation x row x column): *flattened* into ``Discrete(prod(nvec))``
  (index ``i`` is ``jnp.unravel_index(i, nvec)``, row-major, the mask
  reshaped to ``[prod(nvec)]``), so only legal combinations are ever chosen.
  Per-part masks taken as marginals would let the policy combine two legal
  parts into an illegal action, which ends the episode in Tetris,
  Minesweeper and Sudoku. Up to :data:`JOINT_LIMIT` joint actions (FlatPack's
  8100 is the largest); more are refused.
- ``MultiDiscreteArray`` without a mask (RubiksCube: face x depth x
  direction): ``MultiDiscrete(nvec)``, unmasked.
- An integer ``BoundedArray`` of one axis (MultiCVRP's int16 node per
  vehicle, masks ``[vehicles, nodes]``): ``MultiDiscrete``, a part per entry
  of the mask's width (its spec's maximum is one past the last node).
- A float ``BoundedArray`` of one axis: a ``Box`` with its bounds (no
  registered task has one); of more axes: refused.

Where jumanji's mask allows nothing (a part with no legal entry: an MMST
agent that is done, FlatPack when no block fits, and the last observation of
most tasks), every action of that part is marked legal, as the contract asks
for one at least; jumanji then ignores the action or counts it invalid (a
no-op). Illegal actions are not stopped here: jumanji's own consequences
apply (Snake dies, Tetris, Minesweeper and Sudoku end, JobShop ends with a
penalty); only a masked policy never takes them.

Rewards: float32 scalars, jumanji's reward (Game2048: the merged tiles'
values; Snake: 1 per fruit; ...), summed over agents where jumanji gives one
per agent (Connector, LevelBasedForaging: the team's reward; Cleaner, MMST,
RobotWarehouse give one shared reward already). Terminated: jumanji's LAST
with a zero discount (every agent's); truncated: the time limit.

Time limit: ``params.max_steps_in_episode``, which ``max_episode_steps``
overrides and evaluation runs to, counted by the adapter (its state's
``steps``). By default jumanji's own ``time_limit`` where its constructor has
one (the table), else :data:`DEFAULT_MAX_STEPS` (those tasks end by
themselves: a full knapsack, all cities visited, no move left in Game2048;
the limit only stops a game of 2048 that a strong policy keeps going).
jumanji ends an episode at its limit with a *termination* (discount 0,
Snake, Tetris, Maze, PacMan, ...; LevelBasedForaging and Connector a
truncation), which would hide truncations from ppo_jax; so for those tasks
the adapter builds jumanji's environment anew with ``time_limit`` one *past*
ppo_jax's (``jumanji.make(name, time_limit=limit + 1)``, once per limit,
outside any trace), jumanji never reaches its own limit, and the adapter
truncates at ppo_jax's: an episode that ends by itself on the limit's step is
terminated, one cut there truncated, and a trajectory is jumanji's own with
that limit up to that last step (tested on Snake). As jumanji's it is static
(not an array): a new limit compiles a new program.

jumanji's ``step`` does not reset (its ``AutoResetWrapper`` resets in the
same call but replaces the observation the episode ended on).
:class:`JumanjiEnv` calls jumanji's ``step``, then resets a finished episode
from the step's key (its only use: jumanji keeps the randomness of its
transitions, new tiles and fruit, in its own state's key), with the
observation the episode ended on in ``info["final_observation"]``.

State: jumanji's State's leaves in a dict by name (``body``,
``head_position.row``, ...) plus the step count, so checkpoints store it
(jumanji's chex dataclasses are no flax state).

Costs: importing jumanji takes about 2 s; building a task 0.1-6 s
(RobotWarehouse the slowest), twice for a task with a limit of its own. The
reset is computed on every step (under ``vmap`` both sides of a select
run), as gymnax does too and jumanji's ``AutoResetWrapper`` (a ``lax.cond``)
under ``vmap``. 1024 envs vmapped, a jitted scan of 100 steps, two runs (2
CPU cores shared with other work, so only roughly): Game2048 0.45-0.58M
steps/s through the adapter, 0.64-0.95M for jumanji's bare step without
resets, 0.36-0.54M with its AutoResetWrapper; Snake 0.28-0.33M, 0.74-0.91M
and 0.31-0.37M.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import (
    MaskedObservation,
    MultiDiscrete,
    Observation,
    PyTree,
    StepResult,
    select_where,
)
from ppo_jax.envs.refusals import did_you_mean, refuse_backend, require_extra

# Registered names whose instance generator downloads data when it is built.
DOWNLOADS = {
    "Sokoban-v0": "the Boxoban levels, which jumanji downloads from Hugging Face "
    "when the environment is built",
}
# The time limit of tasks that have none of their own (their episodes end by
# themselves, Game2048's when no move is left).
DEFAULT_MAX_STEPS = 4000
# The most joint actions a jointly masked MultiDiscrete task may flatten into.
JOINT_LIMIT = 10_000
# The observation key holding each supported task's main array (obs_key).
MAIN_KEYS = {
    "BinPack-v2": "items_placed",
    "CVRP-v1": "coordinates",
    "Cleaner-v0": "grid",
    "Connector-v3": "grid",
    "FlatPack-v0": "grid",
    "Game2048-v1": "board",
    "GraphColoring-v1": "adj_matrix",
    "JobShop-v0": "ops_machine_ids",
    "Knapsack-v1": "values",
    "LevelBasedForaging-v0": "agents_view",
    "MMST-v0": "adj_matrix",
    "Maze-v0": "walls",
    "Minesweeper-v0": "board",
    "MultiCVRP-v0": "nodes.coordinates",
    "PacMan-v1": "grid",
    "RobotWarehouse-v0": "agents_view",
    "RubiksCube-partly-scrambled-v0": "cube",
    "RubiksCube-v0": "cube",
    "SlidingTilePuzzle-v0": "puzzle",
    "Snake-v1": "grid",
    "Sudoku-v0": "board",
    "Sudoku-very-easy-v0": "board",
    "TSP-v1": "coordinates",
    "Tetris-v0": "grid",
}


class ActionLayout(NamedTuple):
    """How ppo_jax's actions and masks map onto one jumanji task's."""

    # "discrete": Discrete(n); "parts": MultiDiscrete(nvec), a mask per part;
    # "joint": MultiDiscrete(nvec) as one Discrete(prod(nvec)) with the joint
    # mask; "box": a 1-D Box.
    kind: str
    nvec: tuple[int, ...]  # choices per jumanji action entry ((n,): Discrete)
    dtype: Any  # jumanji's action dtype
    offset: int = 0  # an integer BoundedArray's minimum (its action 0)
    masked: bool = False  # does the observation carry an action_mask?
    low: np.ndarray | None = None  # Box bounds
    high: np.ndarray | None = None

    def space(self) -> Any:
        if self.kind == "discrete":
            return spaces.Discrete(self.nvec[0])
        if self.kind == "joint":
            return spaces.Discrete(math.prod(self.nvec))
        if self.kind == "parts":
            return MultiDiscrete(self.nvec)
        assert self.low is not None and self.high is not None
        return spaces.Box(self.low, self.high, self.low.shape, jnp.float32)

    def to_jumanji(self, action: jax.Array) -> jax.Array:
        """ppo_jax's action as jumanji's."""
        if self.kind == "joint":
            action = jnp.stack(jnp.unravel_index(action, self.nvec))
        if self.kind in ("joint", "parts"):
            action = action + self.offset
        return jnp.asarray(action).astype(self.dtype)

    def mask(self, mask: jax.Array) -> jax.Array:
        """jumanji's action mask as ppo_jax's: bool ``[action_dim]``."""
        mask = jnp.asarray(mask, jnp.bool_)
        if self.kind == "parts":
            parts = [mask[i, :n] for i, n in enumerate(self.nvec)]
        else:
            parts = [mask.reshape(-1)]
        # No legal action (a part with none): every action is legal.
        return jnp.concatenate([m | ~jnp.any(m) for m in parts])


@struct.dataclass
class JumanjiParams:
    # Agent steps before an episode is truncated: static, as it picks the
    # jumanji environment (jumanji's time_limit is a constructor argument).
    max_steps_in_episode: int = struct.field(pytree_node=False)


@struct.dataclass
class JumanjiState:
    # jumanji's State of the current episode, its leaves by name (nested
    # fields joined with dots): a dict, which checkpoints store (jumanji's
    # chex dataclasses are no flax state).
    inner: dict[str, Any]
    steps: jax.Array  # int32, agent steps since the reset


def leaf_names(tree: Any) -> list[str]:
    """The names of ``tree``'s leaves: their paths, joined with dots."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(path, simple=True, separator=".") for path, _ in paths]


class Inner(NamedTuple):
    """jumanji's environment for one time limit, and its state's layout."""

    env: Any
    names: list[str]  # the state's leaves, in jax's order
    treedef: Any

    def pack(self, state: Any) -> dict[str, Any]:
        return dict(zip(self.names, jax.tree.leaves(state), strict=True))

    def unpack(self, packed: dict[str, Any]) -> Any:
        return self.treedef.unflatten([packed[name] for name in self.names])


class JumanjiEnv:
    """A jumanji ``Environment`` under the gymnax 1.x contract (see the module
    docstring): observations a dict of jumanji's observation fields (a
    :class:`MaskedObservation` of it with the legal actions, where jumanji
    gives them), actions Discrete, MultiDiscrete or a 1-D Box, rewards float32
    scalars (summed over agents), terminated and truncated bool scalars."""

    def __init__(
        self,
        env: Any,
        name: str,
        layout: ActionLayout,
        max_steps: int,
        build: Callable[[int], Any] | None = None,
    ):
        self.env = env  # jumanji's environment with its registered arguments
        self.name = name
        self.layout = layout
        self.max_steps = max_steps  # the default limit
        # limit -> jumanji's environment for it; None: self.env for every limit.
        self.build = build
        self._inner: dict[int, Inner] = {}

    @property
    def default_params(self) -> JumanjiParams:
        return JumanjiParams(max_steps_in_episode=self.max_steps)

    def inner(self, params: JumanjiParams) -> Inner:
        """The jumanji environment that steps under ``params``' time limit."""
        limit = int(params.max_steps_in_episode) if self.build is not None else 0
        if limit not in self._inner:
            # Built eagerly even under a trace: jumanji computes its specs
            # with jax.numpy when constructed.
            with jax.ensure_compile_time_eval():
                env = self.env if self.build is None else self.build(limit)
            state, _ = jax.eval_shape(env.reset, jax.random.key(0))
            treedef = jax.tree.structure(state)
            self._inner[limit] = Inner(env, leaf_names(state), treedef)
        return self._inner[limit]

    def action_space(self, params: PyTree = None) -> Any:
        return self.layout.space()

    def observe(self, observation: Any) -> Any:
        """jumanji's observation as a dict of its fields (nested ones named
        with dots), in a MaskedObservation when it has an action mask."""
        fields = dict(
            zip(leaf_names(observation), jax.tree.leaves(observation), strict=True)
        )
        mask = fields.pop("action_mask", None)
        if mask is None:
            return fields
        return MaskedObservation(obs=fields, action_mask=self.layout.mask(mask))

    def reset(
        self, key: jax.Array, params: JumanjiParams
    ) -> tuple[Observation, JumanjiState]:
        inner = self.inner(params)
        state, timestep = inner.env.reset(key)
        packed = JumanjiState(inner=inner.pack(state), steps=jnp.zeros((), jnp.int32))
        return self.observe(timestep.observation), packed

    def step(
        self,
        key: jax.Array,
        state: JumanjiState,
        action: jax.Array,
        params: JumanjiParams,
    ) -> StepResult:
        inner = self.inner(params)
        action = self.layout.to_jumanji(action)
        ended_state, ended = inner.env.step(inner.unpack(state.inner), action)
        steps = state.steps + 1
        # jumanji: LAST ends an episode, with discount 0 (every agent's) when
        # it terminated; the time limit is counted here (see make).
        last = ended.last()
        terminated = jnp.logical_and(last, jnp.all(ended.discount == 0))
        truncated = jnp.logical_and(
            jnp.logical_not(terminated),
            jnp.logical_or(last, steps >= params.max_steps_in_episode),
        )
        done = jnp.logical_or(terminated, truncated)
        final = self.observe(ended.observation)
        # The step's key has one use: the reset of a finished episode (jumanji
        # keeps the randomness of its transitions in its state).
        fresh, start = inner.env.reset(key)
        next_state = JumanjiState(
            inner=select_where(done, inner.pack(fresh), inner.pack(ended_state)),
            steps=jnp.where(done, 0, steps).astype(jnp.int32),
        )
        obs = select_where(done, self.observe(start.observation), final)
        reward = jnp.sum(jnp.asarray(ended.reward, jnp.float32))
        info = {"final_observation": final}
        return obs, next_state, reward, terminated, truncated, info


def action_layout(env: Any, label: str) -> ActionLayout:
    """The :class:`ActionLayout` of jumanji's ``env``; one sentence on errors.

    Raises:
        ConfigError: actions that the policy cannot serve: a Box of more than
            one axis, a mask whose layout fits neither one mask per part nor
            one over the joint actions, or more than :data:`JOINT_LIMIT` joint
            actions.
    """
    specs = importlib.import_module("jumanji.specs")
    spec = env.action_spec
    dtype = jnp.dtype(spec.dtype)
    _, timestep = jax.eval_shape(env.reset, jax.random.key(0))
    mask = getattr(timestep.observation, "action_mask", None)
    mask_shape = None if mask is None else tuple(mask.shape)

    def refuse(what: str) -> ConfigError:
        return ConfigError(
            "env_name", label, f"a task whose actions ppo_jax serves: {what}"
        )

    if isinstance(spec, specs.MultiDiscreteArray):
        nvec = tuple(int(n) for n in np.asarray(spec.num_values).reshape(-1))
        if np.asarray(spec.num_values).ndim != 1:
            raise refuse(
                f"its MultiDiscreteArray has nvec of shape {spec.num_values.shape}"
            )
        return _multi_layout(nvec, dtype, 0, mask_shape, refuse)
    if isinstance(spec, specs.DiscreteArray):
        n = int(spec.num_values)
        if mask_shape not in (None, (n,)):
            raise refuse(f"its mask has shape {mask_shape} for {n} actions")
        return ActionLayout("discrete", (n,), dtype, masked=mask is not None)
    if isinstance(spec, specs.BoundedArray) and jnp.issubdtype(dtype, jnp.integer):
        if len(spec.shape) != 1:
            raise refuse(f"its integer actions have shape {spec.shape}, not one axis")
        low = np.broadcast_to(np.asarray(spec.minimum), spec.shape)
        high = np.broadcast_to(np.asarray(spec.maximum), spec.shape)
        if mask_shape is not None and len(mask_shape) == 2:
            nvec = (mask_shape[1],) * mask_shape[0]  # the mask's width per entry
        else:
            nvec = tuple(int(h - lo + 1) for lo, h in zip(low, high, strict=True))
        if len(set(low.tolist())) != 1:
            raise refuse("its integer actions have different minimums per entry")
        return _multi_layout(nvec, dtype, int(low[0]), mask_shape, refuse)
    if isinstance(spec, specs.BoundedArray) and len(spec.shape) == 1 and mask is None:
        shape = tuple(spec.shape)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape).copy()
        return ActionLayout("box", shape, dtype, low=low, high=high)
    raise refuse(
        f"its {type(spec).__name__} actions of shape {tuple(spec.shape)} are "
        "neither discrete nor a Box of one axis"
    )


def _multi_layout(
    nvec: tuple[int, ...],
    dtype: Any,
    offset: int,
    mask_shape: tuple[int, ...] | None,
    refuse: Callable[[str], ConfigError],
) -> ActionLayout:
    """Discrete parts ``nvec``: one mask per part (``[parts, max(nvec)]``),
    or one over the joint actions (``nvec`` itself, flattened)."""
    if mask_shape is None:
        return ActionLayout("parts", nvec, dtype, offset)
    per_part = mask_shape == (len(nvec), max(nvec))
    joint = mask_shape == nvec
    if per_part and joint:
        raise refuse(f"its mask of shape {mask_shape} may be per part or joint")
    if per_part:
        return ActionLayout("parts", nvec, dtype, offset, masked=True)
    if not joint:
        raise refuse(
            f"its mask of shape {mask_shape} is neither one per part "
            f"{(len(nvec), max(nvec))} nor one over the joint actions {nvec}"
        )
    if math.prod(nvec) > JOINT_LIMIT:
        raise refuse(
            f"its {math.prod(nvec)} joint actions (a mask over {nvec}) are more "
            f"than the {JOINT_LIMIT} this family flattens into one Discrete"
        )
    return ActionLayout("joint", nvec, dtype, offset, masked=True)


def make(
    task: str, label: str, backend: str | None
) -> tuple[JumanjiEnv, JumanjiParams]:
    """``(JumanjiEnv, params)`` of jumanji's ``task``; one sentence on errors.

    Raises:
        ConfigError: jumanji not installed, an unknown name (with the closest
            registered names), a task that downloads data when built (refused
            before building), actions the policy cannot serve
            (:func:`action_layout`) or any ``env_backend``.
    """
    require_extra("jumanji", "Jumanji", "jumanji", label)
    jumanji = importlib.import_module("jumanji")
    names = sorted(jumanji.registered_environments())
    if task not in names:
        raise ConfigError(
            "env_name",
            label,
            f"a Jumanji environment, one of the {len(names)} names jumanji "
            f"registers such as Game2048-v1{did_you_mean(task, names)}",
        )
    if task in DOWNLOADS:
        raise ConfigError(
            "env_name",
            label,
            f"a task that builds offline: {task} needs {DOWNLOADS[task]}, and "
            "ppo_jax never downloads at run time",
        )
    refuse_backend(backend, label, "Jumanji")
    env = jumanji.make(task)
    layout = action_layout(env, label)
    cls = type(env)
    if "time_limit" in inspect.signature(cls.__init__).parameters:

        def build(limit: int) -> Any:
            # One more than ppo_jax's limit: jumanji never ends an episode by
            # its own limit (which it reports as terminated).
            return jumanji.make(task, time_limit=limit + 1)

        wrapped = JumanjiEnv(env, task, layout, int(env.time_limit), build)
    else:
        wrapped = JumanjiEnv(env, task, layout, DEFAULT_MAX_STEPS)
    return wrapped, wrapped.default_params
