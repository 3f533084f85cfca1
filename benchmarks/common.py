"""Helpers shared by the benchmark scripts: machine description, timing."""

from __future__ import annotations

import contextlib
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax

from ppo_jax.envs.contract import PyTree

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the device, CPU model, core count and jax version."""
    import os

    dev = jax.devices()[0]
    device = dev.device_kind if dev.platform != "cpu" else "CPU"
    return (
        f"{device} ({jax.default_backend()}), {cpu_model()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}"
    )


def compile_and_time(fn, *args):
    """AOT-compile ``jax.jit(fn)`` for ``args``; run once; return timings.

    Returns ``(output, compile_seconds, run_seconds)``; the run is timed with
    ``block_until_ready`` and excludes compilation.
    """
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, compile_s, time.perf_counter() - t


def timed(fn, *args, repeats: int, warmup: bool = False) -> tuple[float, float]:
    """AOT-compile ``jax.jit(fn)``; returns (compile s, median run s).

    Each run is timed with ``block_until_ready``; ``warmup`` runs it once,
    untimed, first.
    """
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t
    if warmup:
        jax.block_until_ready(compiled(*args))
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t)
    return compile_s, statistics.median(runs)


def random_action_steps(
    step: Callable,
    params: PyTree,
    num_envs: int,
    steps: int,
    sample_action: Callable[[jax.Array], jax.Array],
) -> Callable[[PyTree, jax.Array], jax.Array]:
    """``run(state, key)``: ``steps`` steps of ``step`` (an env's per-env
    ``(key, state, action, params)`` step, vmapped over ``num_envs``) with
    ``sample_action(key)`` actions for all envs, in ``lax.scan``, from the
    batched env state ``state``. Returns the reward summed over all steps (so
    that nothing is dead code): the env-alone ceiling of the benchmarks."""
    batched_step = jax.vmap(step, in_axes=(0, 0, 0, None))

    def run(state: PyTree, key: jax.Array) -> jax.Array:
        def body(state: PyTree, k: jax.Array) -> tuple[PyTree, jax.Array]:
            k_act, k_env = jax.random.split(k)
            _, state, reward, *_ = batched_step(
                jax.random.split(k_env, num_envs), state, sample_action(k_act), params
            )
            return state, reward.sum()

        return jax.lax.scan(body, state, jax.random.split(key, steps))[1].sum()

    return run


def reset_then(
    reset: Callable, params: PyTree, num_envs: int, run: Callable
) -> Callable[[jax.Array], jax.Array]:
    """``run_from_reset(key)``: reset ``num_envs`` envs with ``reset`` (per
    env, vmapped), then ``run(state, key)`` with the rest of the key."""

    def run_from_reset(key: jax.Array) -> jax.Array:
        reset_key, run_key = jax.random.split(key)
        _, state = jax.vmap(reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_envs), params
        )
        return run(state, run_key)

    return run_from_reset


@contextlib.contextmanager
def baseline_worktree(commit: str, parent: Path) -> Iterator[Path]:
    """``commit`` checked out in a detached git worktree ``parent/baseline``,
    removed again on exit."""
    tree = parent / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree),
         commit],
        check=True,
    )  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
        )


def check_imported_from(tree: Path, module: str) -> None:
    """Exit unless a worker's ``ppo_jax.__file__`` (``module``) is in ``tree``."""
    if tree.resolve() not in Path(module).resolve().parents:
        raise SystemExit(f"{tree}: imported ppo_jax from {module}, not from the tree")


# The Craftax paper's PPO (Matthews et al., 2024; Craftax_Baselines ppo.py
# defaults): 1024 envs x 64 steps, lr 2e-4 annealed, gamma 0.99, GAE lambda
# 0.8, clip 0.2, entropy 0.01, value 0.5 with value clipping, gradient norm 1.0,
# Adam eps 1e-5, 4 epochs x 8 minibatches, actor and critic of 3 x 512 tanh
# layers (orthogonal init), no observation or reward normalization. Scaled to
# a 2-core CPU: 64 envs (a 16th of the batch per iteration, minibatches of
# 512). On top of the tuned preset (one Adam for both networks, bootstrap
# at the time limit, a Categorical policy).
CRAFTAX_TUNED: dict[str, Any] = {
    "num_envs": 64,
    "rollout_length": 64,
    "lr": 2e-4,
    "anneal_lr": True,
    "gamma": 0.99,
    "advantage": "gae",
    "gae_lambda": 0.8,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "clip_value": True,
    "max_grad_norm": 1.0,
    "adam_eps": 1e-5,
    "update_epochs": 4,
    "num_minibatches": 8,
    "hidden_sizes": (512, 512, 512),
    "activation": "tanh",
    "ortho_init": True,
    "normalize_obs": False,
    "normalize_reward": False,
}
