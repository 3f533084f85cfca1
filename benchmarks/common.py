"""Helpers shared by the benchmark scripts: machine description, timing."""

from __future__ import annotations

import contextlib
import platform
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jax

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
