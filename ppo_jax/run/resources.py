"""Will a configuration fit in memory? A lower bound, checked before compiling.

:func:`check_memory` adds up what a run must hold at least: the rollout's
``[T, N, ...]`` transitions, the critic's input and (when the network factory
states it, as the MLP's does) its widest layer over the whole batch, the
parameters with their gradients and two Adam moments, and the environments'
states, times the number of vmapped runs. It
refuses a configuration whose lower bound exceeds the memory available (host
RAM for CPU, the device's memory limit for accelerators) with one sentence,
instead of an out-of-memory error from XLA after compiling. Being a lower
bound, it never refuses a configuration that fits.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from ppo_jax.algo.ppo import Pipeline
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.envs.contract import EnvSpec, PyTree


class ResourceError(ValueError):
    """A configuration needs more memory than the machine has."""


def _bytes(tree: PyTree) -> int:
    return sum(
        # dtype.itemsize, not np.dtype(...): PRNG key leaves (brax/Playground
        # states hold some) have an extended dtype numpy does not know.
        int(math.prod(x.shape)) * x.dtype.itemsize
        for x in jax.tree.leaves(tree)
    )


def _stored_bytes(spec: EnvSpec, config: PPOConfig) -> int:
    """Bytes of one observation as stored (float32 once normalized)."""
    itemsize = 4 if config.normalize_obs else np.dtype(spec.obs_dtype).itemsize
    return int(math.prod(spec.obs_shape)) * itemsize


def estimate_bytes(pipeline: Pipeline, num_runs: int = 1) -> dict[str, int]:
    """Lower bounds in bytes of the large parts of ``num_runs`` runs."""
    config, spec, nets = pipeline.config, pipeline.spec, pipeline.networks
    hp, key = config.hyperparams(), jax.random.key(0)
    params = _bytes(jax.eval_shape(nets.actor.init, key, hp)) + _bytes(
        jax.eval_shape(nets.critic.init, key, hp)
    )
    batch = config.batch_size
    action = math.prod(spec.action_shape)  # int32 or float32 entries
    # obs (and pre-reset obs) as stored, with its bool action mask; action,
    # log-prob, reward, done, value
    stored_obs = _stored_bytes(spec, config) + spec.action_dim * spec.action_mask
    if spec.critic_obs_shape is not None:  # the critic's part of each observation
        stored_obs += _stored_bytes(spec.for_critic(), config)
    per_step = stored_obs * (2 if config.bootstrap_truncation else 1)
    per_step += 4 * action + 4 * 4
    setup = pipeline.setup
    states = _bytes(jax.eval_shape(lambda k: setup.env.reset(k, setup.params), key)[1])
    parts = {
        "rollout": batch * per_step,
        # the critic's input, concatenated, and its widest layer's output
        "value pass": (batch + config.num_envs) * (stored_obs + 4 * nets.critic_width),
        "parameters, gradients, Adam": 4 * params,
        "env states": config.num_envs * states,
    }
    return {name: size * num_runs for name, size in parts.items()}


def available_bytes() -> tuple[int | None, str]:
    """Memory the first device can use, and its name (None: unknown)."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        limit = stats.get("bytes_limit")
        return (int(limit) if limit else None), f"the {device.device_kind}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "this machine"
    except OSError:
        pass
    return None, "this machine"


def check_memory(pipeline: Pipeline, num_runs: int = 1) -> None:
    """Raise :class:`ResourceError` when the lower bound cannot fit."""
    available, where = available_bytes()
    if available is None:
        return
    parts = estimate_bytes(pipeline, num_runs)
    total = sum(parts.values())
    if total <= available:
        return
    largest = ", ".join(
        f"{name} {_size(size)}"
        for name, size in sorted(parts.items(), key=lambda kv: -kv[1])[:2]
    )
    runs = f" for {num_runs} runs" if num_runs > 1 else ""
    raise ResourceError(
        f"this configuration needs at least {_size(total)} of memory{runs} "
        f"({largest}), more than the {_size(available)} available on {where}: "
        "lower num_envs, rollout_length, hidden_sizes or the number of runs"
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"
