"""The MuJoCo Playground family: ``playground/<Task>`` (optional extra
``pip install -e '.[playground]'``).

All 25 DM Control Suite tasks build offline (``CartpoleBalance``,
``CheetahRun``, ...). Locomotion and manipulation tasks need the MuJoCo
Menagerie models, which Playground downloads on first use: ppo_jax never
downloads at run time, so they are refused with a sentence unless the models
are already in place (``mujoco_playground/external_deps/mujoco_menagerie``).

Physics: ``env_backend`` ``jax`` (MJX in JAX) or ``warp`` (Warp kernels);
default ``jax`` on a CPU, where Warp compiles its kernels slowly, and
Playground's own default ``warp`` on a GPU. Episodes: the task's
``episode_length`` (1000 steps for DM Control) divided by the action repeat
of Playground's published PPO settings (4 for PendulumSwingup), handled by
:class:`~ppo_jax.envs.state_api.StateEnv`.
"""

from __future__ import annotations

import jax

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import Environment, PyTree
from ppo_jax.envs.refusals import did_you_mean, require_extra
from ppo_jax.envs.state_api import StateEnv, headless_opengl_default

BACKENDS = ("jax", "warp")
# Action repeat of Playground's tuned PPO settings
# (mujoco_playground/config/dm_control_suite_params.py). There, in 0.2.x, the
# branch is keyed "PendulumSwingUp" and so never matches the registered
# "PendulumSwingup" (mujoco_playground pull request #260 fixes the name; open
# since 2026-01): ppo_jax applies the repeat Playground meant.
ACTION_REPEAT = {"PendulumSwingup": 4}


def make(task: str, label: str, backend: str | None) -> tuple[Environment, PyTree]:
    """``(StateEnv, params)`` of Playground's ``task``; one sentence on errors."""
    require_extra("mujoco_playground", "MuJoCo Playground", "playground", label)
    headless_opengl_default()  # before MuJoCo is imported: GIFs off-screen
    from mujoco_playground import registry
    from mujoco_playground._src import mjx_env

    if task not in registry.ALL_ENVS:
        hint = did_you_mean(task, registry.ALL_ENVS)
        raise ConfigError("env_name", label, f"a MuJoCo Playground task{hint}")
    if task not in registry.dm_control_suite.ALL_ENVS and not (
        mjx_env.MENAGERIE_PATH.exists()
    ):
        raise ConfigError(
            "env_name",
            label,
            f"a task whose models are present: {task} needs the MuJoCo Menagerie "
            f"models in {mjx_env.MENAGERIE_PATH}, which Playground downloads and "
            "ppo_jax does not (the DM Control Suite tasks build offline)",
        )
    if backend is None:
        backend = "warp" if jax.default_backend() == "gpu" else "jax"
    if backend not in BACKENDS:
        raise ConfigError(
            "env_backend", backend, f"one of {', '.join(BACKENDS)} for {label}"
        )
    env = registry.load(task, config_overrides={"impl": backend})
    repeat = ACTION_REPEAT.get(task, 1)
    wrapped = StateEnv(env, env._config.episode_length // repeat, repeat)
    return wrapped, wrapped.default_params
