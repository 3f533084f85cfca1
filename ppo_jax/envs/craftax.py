"""The Craftax family: ``craftax/<name>``, the open-ended Minecraft-like
survival games of Craftax (Matthews et al., ICML 2024), in JAX.

Optional extra: ``pip install -e '.[craftax]'`` (``craftax>=1.6,<2``).

Variants (17 discrete actions in Classic, 43 in Craftax; float32 observations
in [0, 1]):

- ``Craftax-Classic-Symbolic-v1``: a ``(1345,)`` vector (a 7x9 local map of
  one-hot blocks and mobs, then inventory and status);
- ``Craftax-Classic-Pixels-v1``: a ``(63, 63, 3)`` image;
- ``Craftax-Symbolic-v1``: a ``(8268,)`` vector;
- ``Craftax-Pixels-v1``: a ``(130, 110, 3)`` image.

Reward: achievements unlocked (+1 each in Classic; 1, 3, 5 or 8 by difficulty
in Craftax) and health gained or lost (0.1 per point). Episodes end when the
player dies (Classic also: stands in lava; Craftax also: beats the final
boss), which is *terminated*, or at the time limit, *truncated*: 10,000 steps
in Classic, 100,000 in Craftax. The limit is ``params.max_steps_in_episode``,
which ``max_episode_steps`` overrides and evaluation runs to: evaluating a
Craftax run steps 100,000 times unless it set a shorter limit.

craftax's own environments return ``(obs, state, reward, done, info)`` (the
gymnax 0.x interface) and keep no final observation, so :class:`CraftaxEnv`
adapts them: their ``step_env``/``reset_env`` without auto-reset, the time
limit as truncation, auto-reset with ``info["final_observation"]``, and
craftax's ``info`` (``Achievements/*``, ``score``, ``discount``) passed on.

Resets: generating a world costs about 30 game steps. Written per env (as
craftax's and gymnax's auto-resets are), a vmapped step generates one for
every env at every step: under ``vmap`` both sides of a select run, and
stepping slows down about 30 times. :class:`CraftaxEnv`'s step therefore
carries its own batching rule (``jax.custom_batching.custom_vmap``): vmapped
over N envs, it steps all N, then generates worlds only at steps where an
episode ended, for at most ``N // 16`` envs (all N when more ended at once),
each from the key the per-env step would use; under a further ``vmap`` (over
seeds, say) all envs of all seeds are one batch. Results are the per-env
step's (up to float rounding); only the cost changes.

Nothing is downloaded: the game and its textures ship with the package. The
pixel variants process the textures once, on first use (about a minute), and
craftax caches them in its own package directory.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.custom_batching import custom_vmap

from ppo_jax._imports import error_summary
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import PyTree, StepResult, select_where
from ppo_jax.envs.refusals import did_you_mean, refuse_backend, require_extra

# name -> craftax module whose load_all_textures() the pixel variant renders
# with (None: symbolic).
VARIANTS: dict[str, str | None] = {
    "Craftax-Classic-Symbolic-v1": None,
    "Craftax-Classic-Pixels-v1": "craftax.craftax_classic.constants",
    "Craftax-Symbolic-v1": None,
    "Craftax-Pixels-v1": "craftax.craftax.constants",
}
# A vmapped step generates worlds for at most num_envs // RESET_RATIO envs
# when few episodes end (craftax's baselines reset 1 in 16 envs by default).
RESET_RATIO = 16
NO_LIMIT = 2**31 - 1


@struct.dataclass
class CraftaxParams:
    inner: Any  # craftax's EnvParams
    max_steps_in_episode: int  # the time limit (craftax's max_timesteps)


def _broadcast(tree: PyTree, batched: PyTree, size: int) -> PyTree:
    """Leaves of ``tree`` not ``batched`` given a leading axis of ``size``."""
    return jax.tree.map(
        lambda x, b: x if b else jnp.broadcast_to(x, (size, *jnp.shape(x))),
        tree,
        batched,
    )


def _all_batched(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda _: True, tree)


class CraftaxEnv:
    """A craftax environment (without auto-reset) under the gymnax 1.x contract
    (see the module docstring)."""

    def __init__(self, env: Any):
        self.env = env
        self._vmappable_step = custom_vmap(self._step)
        self._vmappable_step.def_vmap(self._step_batched)
        self._reset_ended = custom_vmap(self._reset_ended_rows)
        self._reset_ended.def_vmap(self._reset_ended_batched)

    @property
    def name(self) -> str:
        return str(self.env.name)

    @property
    def default_params(self) -> CraftaxParams:
        inner = self.env.default_params
        return CraftaxParams(inner, int(inner.max_timesteps))

    def action_space(self, params: PyTree = None) -> Any:
        return self.env.action_space(None if params is None else params.inner)

    def observation_space(self, params: CraftaxParams) -> Any:
        return self.env.observation_space(params.inner)

    def _inner(self, params: CraftaxParams) -> Any:
        return params.inner.replace(max_timesteps=params.max_steps_in_episode)

    def reset(self, key: jax.Array, params: CraftaxParams) -> tuple[jax.Array, Any]:
        return self.env.reset_env(key, self._inner(params))

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: CraftaxParams
    ) -> StepResult:
        return self._vmappable_step(key, state, action, params)

    def _transition(
        self, key: jax.Array, state: Any, action: jax.Array, params: CraftaxParams
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One game step, no reset: ``(obs, state, reward, terminated,
        truncated, info)``."""
        inner = self._inner(params)
        obs, state, reward, done, info = self.env.step_env(key, state, action, inner)
        # Ended without the time limit: terminated; else (done) truncated.
        terminated = self.env.is_terminal(state, inner.replace(max_timesteps=NO_LIMIT))
        truncated = jnp.logical_and(done, jnp.logical_not(terminated))
        reward = jnp.asarray(reward, jnp.float32)
        return obs, state, reward, terminated, truncated, info

    def _step(
        self, key: jax.Array, state: Any, action: jax.Array, params: CraftaxParams
    ) -> StepResult:
        """The per-env step: a world is generated whether it is needed or not."""
        step_key, reset_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = self._transition(
            step_key, state, action, params
        )
        reset_obs, reset_state = self.reset(reset_key, params)
        done = jnp.logical_or(terminated, truncated)
        return (
            select_where(done, reset_obs, obs),
            select_where(done, reset_state, state),
            reward,
            terminated,
            truncated,
            {**info, "final_observation": obs},
        )

    def _step_batched(
        self,
        axis_size: int,
        in_batched: list[Any],
        key: jax.Array,
        state: Any,
        action: jax.Array,
        params: CraftaxParams,
    ) -> tuple[StepResult, Any]:
        """The vmapped step: the game steps of all envs, then worlds generated
        for the envs that ended (:meth:`_reset_ended_rows`)."""
        key_b, state_b, action_b, params_b = in_batched
        key = _broadcast(key, key_b, axis_size)
        state = _broadcast(state, state_b, axis_size)
        action = _broadcast(action, action_b, axis_size)
        if any(jax.tree.leaves(params_b)):  # per-env params: the per-env step
            params = _broadcast(params, params_b, axis_size)
            out = jax.vmap(self._step)(key, state, action, params)
            return out, _all_batched(out)
        keys = jax.vmap(jax.random.split)(key)
        obs, state, reward, terminated, truncated, info = jax.vmap(
            self._transition, in_axes=(0, 0, 0, None)
        )(keys[:, 0], state, action, params)
        done = jnp.logical_or(terminated, truncated)
        next_obs, next_state = self._reset_ended(done, keys[:, 1], obs, state, params)
        info = {**info, "final_observation": obs}
        out = (next_obs, next_state, reward, terminated, truncated, info)
        return out, _all_batched(out)

    def _reset_ended_rows(
        self,
        done: jax.Array,
        keys: jax.Array,
        obs: jax.Array,
        state: Any,
        params: CraftaxParams,
    ) -> tuple[jax.Array, Any]:
        """Rows ``i`` of ``(obs, state)`` (``[N, ...]``) where ``done[i]``
        replaced by ``reset(keys[i])``: none generated when no env ended, at
        most ``N // RESET_RATIO`` when few did, else all N."""
        size = done.shape[0]
        few = max(1, size // RESET_RATIO)
        num_done = jnp.sum(done, dtype=jnp.int32)
        reset = jax.vmap(self.reset, in_axes=(0, None))

        def none() -> tuple[jax.Array, Any]:
            return obs, state

        def some() -> tuple[jax.Array, Any]:
            # The first `few` ended rows; the rest of idx is out of range
            # (size): gathered clamped, dropped when scattered.
            (idx,) = jnp.nonzero(done, size=few, fill_value=size)
            new_obs, new_state = reset(keys[jnp.minimum(idx, size - 1)], params)

            def put(whole: jax.Array, part: jax.Array) -> jax.Array:
                return whole.at[idx].set(part, mode="drop")

            return put(obs, new_obs), jax.tree.map(put, state, new_state)

        def every() -> tuple[jax.Array, Any]:
            new_obs, new_state = reset(keys, params)
            return select_where(done, (new_obs, new_state), (obs, state))

        branch = (num_done > 0).astype(jnp.int32) + (num_done > few).astype(jnp.int32)
        return jax.lax.switch(branch, (none, some, every))

    def _reset_ended_batched(
        self,
        axis_size: int,
        in_batched: list[Any],
        done: jax.Array,
        keys: jax.Array,
        obs: jax.Array,
        state: Any,
        params: CraftaxParams,
    ) -> tuple[tuple[jax.Array, Any], Any]:
        """Under a further ``vmap`` (over seeds, say): the ``[B, N]`` envs
        as one batch of ``B * N``, so that the branches stay branches."""
        *rows_b, params_b = in_batched
        done, keys, obs, state = (
            _broadcast(x, b, axis_size)
            for x, b in zip((done, keys, obs, state), rows_b, strict=True)
        )
        if any(jax.tree.leaves(params_b)):  # per-batch params: plain selects
            params = _broadcast(params, params_b, axis_size)
            out = jax.vmap(self._reset_ended_rows)(done, keys, obs, state, params)
            return out, _all_batched(out)
        done, keys, obs, state = jax.tree.map(
            lambda x: x.reshape((-1, *x.shape[2:])), (done, keys, obs, state)
        )
        out = self._reset_ended(done, keys, obs, state, params)
        out = jax.tree.map(lambda x: x.reshape((axis_size, -1, *x.shape[1:])), out)
        return out, _all_batched(out)


def make(task: str, label: str, backend: str | None) -> tuple[CraftaxEnv, PyTree]:
    """``(CraftaxEnv, params)`` of craftax's ``task``; one sentence on errors.

    Raises:
        ConfigError: craftax not installed, an unknown name (with the closest
            variants), any ``env_backend``, or pixel textures that fail to load.
    """
    require_extra("craftax", "craftax", "craftax", label)
    if task not in VARIANTS:
        hint = did_you_mean(task, VARIANTS, cutoff=0.5)
        raise ConfigError(
            "env_name",
            label,
            f"a craftax environment, one of {', '.join(VARIANTS)}{hint}",
        )
    refuse_backend(backend, label, "craftax")
    from craftax.craftax_env import make_craftax_env_from_name

    textures = VARIANTS[task]
    if textures is not None:
        _load_textures(textures, label)
    env = CraftaxEnv(make_craftax_env_from_name(task, auto_reset=False))
    return env, env.default_params


def _load_textures(module: str, label: str) -> None:
    """Load (on first use: process and cache) a pixel variant's textures now,
    with craftax's progress messages silenced (they go to stdout)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            importlib.import_module(module).load_all_textures()
    except Exception as e:  # a broken install or an unwritable cache
        raise ConfigError(
            "env_name",
            label,
            f"a craftax environment whose textures load (craftax failed with "
            f"{error_summary(e)})",
        ) from e
