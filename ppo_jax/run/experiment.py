"""Many runs in one compile: seeds x sweep settings, sharded over devices.

The ``R = settings x seeds`` runs of a :class:`~ppo_jax.config.runspec.RunSpec` are
vmapped together (a leading ``[R]`` axis on every leaf of the runner state and
the metrics) and the run axis is sharded across all devices with
``jax.sharding`` (every process's, after
:func:`ppo_jax.run.distributed.initialize`); a single run instead shards its
environment axis. Each run equals ``make_train(config with its setting)``
called alone with its key (up to float rounding).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppo_jax.algo.ppo import Chunk, Init, Pipeline, RunnerState, make_chunk
from ppo_jax.config.runspec import RunSpec
from ppo_jax.envs.contract import PyTree

Tree = TypeVar("Tree")
RUN_AXIS = "runs"  # the vmap axis of a batch of runs (its collectives' name)
# XLA options on a CPU, measured on the default run (2-core CPU, chunk of 10
# tutorial iterations, medians of 4 alternating runs):
# - init runs once per run, so its code may be slow: without LLVM's
#   optimizations (-O0) and with the older loop emitters it compiles in
#   0.4 s (1.0 s at the default -O2, 0.6 s at -O0 alone);
# - the chunk at LLVM -O1 compiles in 1.48 s instead of 1.75 s and runs as
#   fast (its time goes to matmul library calls and small fusions): tutorial,
#   matched 64-wide, CartPole, Breakout-MinAtar's CNN and Playground's
#   CartpoleBalance all within +-11% run to run, in both directions. The
#   older loop emitters would save another 0.4 s there but run it 10% slower.
# An option the user sets in XLA_FLAGS takes the place of ours.
INIT_COMPILER_OPTIONS: dict[str, dict[str, Any]] = {
    "cpu": {
        "xla_backend_optimization_level": 0,
        "xla_cpu_use_fusion_emitters": False,
        "xla_llvm_disable_expensive_passes": True,
    }
}
CHUNK_COMPILER_OPTIONS: dict[str, dict[str, Any]] = {
    "cpu": {"xla_backend_optimization_level": 1}
}


def compiler_options(
    table: dict[str, dict[str, Any]], backend: str
) -> dict[str, Any] | None:
    """``table``'s XLA options for ``backend``, less those the user set in
    ``XLA_FLAGS`` (``--xla_backend_optimization_level=0`` for quick compiles
    of short runs, as the test suite does): the user's settings win."""
    options = table.get(backend)
    if options is None:
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    return {k: v for k, v in options.items() if f"--{k}=" not in flags} or None


def runner_template(pipeline: Pipeline, spec: RunSpec) -> RunnerState:
    """Shapes and dtypes of the runner state of ``spec``'s runs (with a leading
    ``[R]`` axis when batched): what a checkpoint is restored into."""
    init = jax.vmap(pipeline.init) if spec.batched else pipeline.init
    template: RunnerState = jax.eval_shape(init, spec.keys(), spec.hyperparams())
    return template


class Experiment:
    """The compiled functions of a RunSpec and how their data is placed."""

    def __init__(self, spec: RunSpec, pipeline: Pipeline, chunk_iterations: int):
        self.spec = spec
        self.pipeline = pipeline
        self.chunk_iterations = chunk_iterations  # iterations per compiled call
        init: Init = pipeline.init
        run_axis = RUN_AXIS if spec.batched else None
        chunk: Chunk = make_chunk(pipeline, chunk_iterations, run_axis)
        if spec.batched:
            init, chunk = jax.vmap(init), jax.vmap(chunk, axis_name=RUN_AXIS)
        self.keys = spec.keys()
        self.hparams = spec.hyperparams()
        self.runner_shape = runner_template(pipeline, spec)
        self.mesh, self.note = self._mesh()
        runner_sharding = self._runner_sharding()
        hp_sharding = self._along_runs(self.hparams)
        key_sharding = self._along_runs(self.keys)
        self._init = jax.jit(
            init,
            in_shardings=(key_sharding, hp_sharding),
            out_shardings=runner_sharding,
        )
        # With a mesh over several processes, metrics and checkpoints are
        # replicated on every device (each process reads all of them); with
        # one process they stay where XLA puts them.
        replicated = None
        if self.mesh is not None and jax.process_count() > 1:
            replicated = NamedSharding(self.mesh, PartitionSpec())
        self._chunk = jax.jit(
            chunk,
            in_shardings=(runner_sharding, hp_sharding),
            out_shardings=(runner_sharding, replicated),
        )
        self._replicate = (
            None
            if replicated is None
            else jax.jit(lambda x: x, out_shardings=replicated)
        )
        self.runner_sharding = runner_sharding

    # ---------------------------------------------------------------- placement
    def _mesh(self) -> tuple[Mesh | None, str | None]:
        devices = jax.devices()
        n = len(devices)
        if n == 1:
            return None, None
        size = self.spec.num_runs if self.spec.batched else self.spec.config.num_envs
        axis = "runs" if self.spec.batched else "num_envs"
        if size % n:
            return None, (
                f"note: {n} devices but {size} {axis}, not a multiple: "
                "everything runs on the first device"
            )
        return Mesh(np.asarray(devices), ("devices",)), None

    def _along_runs(self, tree: PyTree) -> PyTree:
        """Batched: split the leading run axis; single run: replicate."""
        mesh = self.mesh
        if mesh is None:
            return None
        spec = PartitionSpec("devices") if self.spec.batched else PartitionSpec()
        return jax.tree.map(lambda _: NamedSharding(mesh, spec), tree)

    def _runner_sharding(self) -> PyTree:
        if self.mesh is None or self.spec.batched:
            return self._along_runs(self.runner_shape)
        # A single run: split the environment axis of the per-env leaves; the
        # parameters, optimizer state, statistics and key are replicated.
        replicated = NamedSharding(self.mesh, PartitionSpec())
        per_env = NamedSharding(self.mesh, PartitionSpec("devices"))
        envs = self.runner_shape.envs
        env_sharding = dataclasses.replace(
            jax.tree.map(lambda _: per_env, envs),
            obs_stats=jax.tree.map(lambda _: replicated, envs.obs_stats),
            return_stats=jax.tree.map(lambda _: replicated, envs.return_stats),
        )
        sharding = jax.tree.map(lambda _: replicated, self.runner_shape)
        return dataclasses.replace(sharding, envs=env_sharding)

    # ------------------------------------------------------------------ compile
    def compile(
        self, stage: Callable[[str], None] = lambda _: None
    ) -> tuple[Init, Chunk]:
        """AOT-compile init and chunk; returns ``(init, run_chunk)``.

        ``stage("tracing")`` is called before JAX traces and lowers both
        functions, ``stage("compiling")`` before XLA compiles the chunk (for
        progress messages); init's XLA compile overlaps the chunk's tracing.
        """
        stage("tracing")
        backend = jax.default_backend()
        init = self._init.lower(self.keys, self.hparams)
        # XLA compiles init on a second thread (it releases the GIL) while
        # JAX traces the chunk in Python: 2.45 -> 2.2 s for the default run.
        with ThreadPoolExecutor(1) as pool:
            init_compiled = pool.submit(
                init.compile, compiler_options(INIT_COMPILER_OPTIONS, backend)
            )
            chunk = self._chunk.lower(self.runner_shape, self.hparams)
            stage("compiling")
            chunk_compiled = chunk.compile(
                compiler_options(CHUNK_COMPILER_OPTIONS, backend)
            )
            return init_compiled.result(), chunk_compiled

    def gather(self, runner: RunnerState) -> RunnerState:
        """``runner`` with every value readable by this process (to checkpoint):
        itself with one process; with several, replicated onto every device
        by an all-gather in which every process must take part, then copied to
        the host (so that process 0 can write it alone)."""
        if self._replicate is None:
            return runner
        return jax.device_get(self._replicate(runner))

    def place(self, runner: RunnerState) -> RunnerState:
        """Put a (restored, host) runner state where the compiled chunk wants it.

        With several processes every process holds the whole state (each read
        the checkpoint) and builds its shards of the global arrays from it."""
        if self.runner_sharding is None:
            return jax.device_put(runner)
        if jax.process_count() == 1:
            return jax.device_put(runner, self.runner_sharding)
        return jax.tree.map(_global_array, runner, self.runner_sharding)


def _global_array(value: jax.Array, sharding: NamedSharding) -> jax.Array:
    """A global array over every process's devices, from a whole host value
    that every process holds (PRNG keys through their key data)."""
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        data = np.asarray(jax.random.key_data(value))
        shards = jax.make_array_from_callback(data.shape, sharding, data.__getitem__)
        return jax.random.wrap_key_data(shards, impl=jax.random.key_impl(value))
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, host.__getitem__)


def run_axis(tree: Tree, batched: bool) -> Tree:
    """Host metrics/runner with a leading [R] axis, adding one for a single run."""
    if batched:
        return tree
    return jax.tree.map(lambda x: np.asarray(x)[None], tree)
