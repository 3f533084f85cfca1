"""Helpers shared by the benchmark scripts: machine description, timing."""

from __future__ import annotations

import platform
import statistics
import time

import jax


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
