"""Episodes as GIFs: MuJoCo scenes of ``playground/`` and ``brax/`` runs.

One deterministic episode runs in the training env itself (JAX, the same
policy as every evaluation); its physics states (``qpos``, ``qvel``, mocap
bodies) are then drawn one by one with MuJoCo's own renderer, headless
through OpenGL: ``MUJOCO_GL=egl`` (libEGL, Mesa's software rasterizer is
enough; the default set here) or ``osmesa`` (libOSMesa). gymnax runs are drawn
by gymnasium's classic-control renderer instead (:mod:`ppo_jax.analysis.evaluation`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax._imports import error_summary
from ppo_jax.algo.ppo import Pipeline, RunnerState
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import split_env_name
from ppo_jax.envs.state_api import StateEnv, headless_opengl_default
from ppo_jax.run import rundir

MUJOCO_FAMILIES = ("playground", "brax")
GIF_SIZE = (240, 320)  # height, width in pixels (Playground's render default)
MIN_FRAME_SECONDS = 0.04  # at most 25 frames per second


def is_mujoco_run(env_name: str) -> bool:
    return split_env_name(env_name)[0] in MUJOCO_FAMILIES


def check_mujoco_rendering(env_name: str, path: str) -> None:
    """Refuse ``--gif`` in one sentence where MuJoCo cannot draw headless here
    (one 8x8 frame of an empty scene, before any run is loaded)."""
    headless_opengl_default()
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string("<mujoco/>")
        renderer = mujoco.Renderer(model, height=8, width=8)
        try:
            renderer.update_scene(mujoco.MjData(model))
            renderer.render()
        finally:
            renderer.close()
    except Exception as e:  # any platform error becomes one sentence
        raise ConfigError(
            "gif",
            path,
            f"none for {env_name} on this machine: MuJoCo's headless renderer "
            f"needs OpenGL through MUJOCO_GL=egl (libEGL) or osmesa (libOSMesa), "
            "set before MuJoCo is first imported, and MUJOCO_GL="
            f"{os.environ.get('MUJOCO_GL')} failed "
            f"({error_summary(e)})",
        ) from e


def _state_env(env: Any) -> StateEnv:
    """The :class:`StateEnv` inside ``env`` (under an ``ObservationKey``)."""
    while not isinstance(env, StateEnv):
        env = env.env
    return env


def _physics(inner: Any) -> dict[str, jax.Array]:
    """What MuJoCo needs to draw a state: Playground keeps an MJX ``data``,
    brax a ``pipeline_state`` with ``q``/``qd``."""
    data = getattr(inner, "data", None)
    if data is not None:
        return {
            "qpos": data.qpos,
            "qvel": data.qvel,
            "mocap_pos": data.mocap_pos,
            "mocap_quat": data.mocap_quat,
        }
    pipeline_state = inner.pipeline_state
    return {"qpos": pipeline_state.q, "qvel": pipeline_state.qd}


def mujoco_episode(
    pipeline: Pipeline, runner: RunnerState, seed: int
) -> tuple[dict[str, np.ndarray], float, int]:
    """One deterministic episode from ``seed``.

    Returns ``(physics, return, length)``: ``physics`` maps ``qpos``,
    ``qvel`` (and mocap fields) to ``[length, ...]`` arrays, the state each
    action was taken in.
    """
    env, params, policy = pipeline.setup.env, pipeline.setup.params, pipeline.policy
    actor_params, stats = runner.agent.actor_params, runner.envs.obs_stats
    max_steps = pipeline.spec.max_episode_steps
    assert max_steps is not None  # StateEnv params always have a time limit

    def episode(key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        reset_key, steps_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry: Any, step_key: jax.Array) -> tuple[Any, Any]:
            obs, state, memory, total, running = carry
            shown = _physics(state.inner)
            action, memory = policy.act(actor_params, stats, obs, memory)
            obs, state, reward, terminated, truncated, _ = env.step(
                step_key, state, action, params
            )
            total = total + jnp.where(running, reward.astype(jnp.float32), 0.0)
            ended = terminated | truncated
            return (obs, state, memory, total, running & ~ended), (shown, running)

        memory = policy.initial_carry()
        init = (obs, state, memory, jnp.float32(0.0), jnp.bool_(True))
        (*_, total, _), (physics, ran) = jax.lax.scan(
            step, init, jax.random.split(steps_key, max_steps)
        )
        return physics, total, ran.sum()

    physics, total, length = jax.jit(episode)(jax.random.key(seed))
    n = int(length)
    return {name: np.asarray(x)[:n] for name, x in physics.items()}, float(total), n


def draw(
    mj_model: Any, physics: dict[str, np.ndarray], size: tuple[int, int] = GIF_SIZE
) -> list[np.ndarray]:
    """RGB frames ``[height, width, 3]`` uint8 of the states in ``physics``
    (camera: the model's first fixed camera, else MuJoCo's free camera)."""
    import mujoco

    height, width = size
    renderer = mujoco.Renderer(mj_model, height=height, width=width)
    camera = 0 if mj_model.ncam > 0 else -1
    data = mujoco.MjData(mj_model)
    frames = []
    try:
        for i in range(len(physics["qpos"])):
            for name, values in physics.items():
                getattr(data, name)[:] = values[i]
            mujoco.mj_forward(mj_model, data)
            renderer.update_scene(data, camera=camera)
            frames.append(renderer.render().copy())
    finally:
        renderer.close()
    return frames


def mujoco_model(pipeline: Pipeline) -> Any:
    """The ``mujoco.MjModel`` of a Playground or brax run's env."""
    env: Any = _state_env(pipeline.setup.env).env
    model = getattr(env, "mj_model", None)
    return model if model is not None else env.sys.mj_model


def frame_stride(step_seconds: float) -> tuple[int, int]:
    """``(stride, milliseconds)``: draw every ``stride``-th agent step, shown
    for ``milliseconds``, so the GIF plays in real time at no more than 25
    frames per second (a 1000-step DM Control episode at 10 ms per step: 250
    frames of 40 ms, not a 20 MB GIF of 1000)."""
    stride = max(1, math.ceil(MIN_FRAME_SECONDS / step_seconds - 1e-6))
    return stride, max(20, round(1000 * stride * step_seconds))


def render_mujoco_gif(
    pipeline: Pipeline, runner: RunnerState, path: str | Path, seed: int = 0
) -> tuple[float, int]:
    """Render one deterministic episode of a Playground or brax run to a GIF,
    in real time (:func:`frame_stride`).

    Returns ``(return, length)`` of that episode."""
    physics, total, length = mujoco_episode(pipeline, runner, seed)
    state_env = _state_env(pipeline.setup.env)
    step_seconds = float(state_env.env.dt) * state_env.action_repeat
    stride, ms = frame_stride(step_seconds)
    shown = {name: x[::stride] for name, x in physics.items()}
    save_gif(draw(mujoco_model(pipeline), shown), path, ms)
    return total, length


def save_gif(frames: Sequence[np.ndarray], path: str | Path, ms: int = 40) -> None:
    """Write ``frames`` (uint8 ``[H, W, 3]``) as a looping animated GIF.

    One 256-colour palette, from 8 frames spread over the episode, for every
    frame: PIL's own per-frame palettes took 12.8 s for a 500-frame 600x400
    CartPole episode, this 1.5 s (AMD EPYC, one core).
    """
    from PIL import Image

    sample = np.linspace(0, len(frames) - 1, min(8, len(frames))).astype(int)
    palette = Image.fromarray(np.concatenate([frames[i] for i in sample])).quantize(256)
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE)
        for f in frames
    ]
    try:
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=ms, loop=0
        )
    except OSError as e:
        raise rundir.RunDirError(f"cannot write the GIF {str(path)!r} ({e})") from e
