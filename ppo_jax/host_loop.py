"""The host loop of a training run: compiled chunks, progress, checkpoints.

One compiled chunk of ``save_freq`` iterations (for all runs of a
:class:`~ppo_jax.experiment.RunSpec` at once) is called in a loop. After each
chunk the per-iteration summaries are printed, rows appended to
``metrics.csv`` and the whole runner state checkpointed atomically. A diverged
chunk (non-finite losses or parameters) or a Ctrl-C / SIGTERM ends the loop at
a chunk boundary, so metrics and checkpoint always describe the same iteration,
and ``resume`` continues from there exactly.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from ppo_jax import reporting, rundir
from ppo_jax.envs import Environment
from ppo_jax.envs.contract import PyTree, describe
from ppo_jax.experiment import Experiment, run_axis
from ppo_jax.networks import NetworkFactory
from ppo_jax.pipeline import build_pipeline
from ppo_jax.runspec import RunSpec

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class GracefulStop:
    """Turn the first Ctrl-C (or SIGTERM) into a request to stop at a boundary.

    The training loop checks ``requested`` after each chunk, so the run ends
    with metrics and checkpoint of the same iteration. A second Ctrl-C aborts
    at once (the last checkpoint on disk stays valid: writes are atomic).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[
            int, Callable[[int, FrameType | None], Any] | int | None
        ] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping after the current chunk (Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_training(
    spec: RunSpec | None,
    run_dir: Path | None,
    *,
    resume: Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
) -> int:
    """Train ``spec`` into ``run_dir`` (or continue the run in ``resume``).

    ``env``, ``env_params`` and ``network`` bring your own environment object
    and network factory, as for :func:`ppo_jax.make_train` (pass the same ones
    again to resume such a run).

    Returns the exit code: 0 done, 3 diverged (NaN guard), 130 stopped.
    Raises ConfigError or RunDirError for bad input, before anything compiles.
    """
    # Validate everything (config, sweep, env, networks, run dir, and the
    # checkpoint of a resumed run) before compiling.
    restored = None
    if resume is not None:
        run_dir = resume
        spec = rundir.load_run_spec(run_dir, rundir.load_config(run_dir))
    if spec is None:
        raise ValueError("run_training needs a RunSpec, or resume=RUN_DIR")
    if env is not None and resume is None:
        # The run directory records where the environment came from.
        spec = dataclasses.replace(
            spec, config=spec.config.replace(env_name=describe(env))
        )
    spec = spec.validate()
    config = spec.config
    pipeline = build_pipeline(config, env, env_params, network)
    chunk_len = min(config.save_freq, config.num_iterations)
    experiment = Experiment(spec, pipeline, chunk_len)
    if resume is not None:
        restored = rundir.load_checkpoint(resume, experiment.runner_shape, config)
    else:
        run_dir = rundir.prepare_run_dir(run_dir, config.env_name, overwrite)
        rundir.save_config(run_dir, config)
        rundir.save_run_spec(run_dir, spec)
    assert run_dir is not None
    sweep_fields = tuple(name for name, _ in spec.sweep)
    labels = spec.run_labels()
    say = (lambda *_: None) if quiet else (lambda s: tqdm.write(s, file=sys.stdout))

    runs = f", {spec.num_runs} runs" if spec.batched else ""
    print(
        f"ppo_jax: {config.env_name}, {config.num_envs} envs x "
        f"{config.rollout_length} steps = {config.batch_size} steps/iteration, "
        f"{config.num_iterations} iterations{runs}, {len(jax.devices())} "
        f"device(s), run dir {run_dir}",
        flush=True,
    )

    # Compile once, ahead of time, so compile time is measured on its own.
    t0 = time.perf_counter()
    if experiment.note:
        print(experiment.note, flush=True)
    init, run_chunk = experiment.compile()
    compile_s = time.perf_counter() - t0
    print(f"compiled in {compile_s:.2f} s", flush=True)

    # From the first checkpoint on, Ctrl-C / SIGTERM means "stop at the next
    # chunk boundary" (metrics and checkpoint then describe the same iteration).
    stop = GracefulStop()
    with stop:
        hp = experiment.hparams
        if restored is not None:
            runner = experiment.place(restored)
            done = int(np.max(restored.iteration))
            rows = [r for r in rundir.read_rows(run_dir) if r["iteration"] <= done]
            print(f"resuming after iteration {done}", flush=True)
        else:
            runner = init(experiment.keys, hp)
            rundir.save_checkpoint(run_dir, config, runner)  # iteration 0: a good one
            done, rows = 0, []
        writer = rundir.MetricsWriter(run_dir, reporting.columns(sweep_fields), rows)
        train_s, steps_run = 0.0, 0
        diverged_at = None
        num_chunks = math.ceil((config.num_iterations - done) / chunk_len)
        bar = tqdm(
            total=config.num_iterations,
            initial=done,
            unit="it",
            disable=not sys.stderr.isatty(),
        )
        try:
            for _ in range(num_chunks):
                if stop.requested:
                    break
                t = time.perf_counter()
                new_runner, metrics = run_chunk(runner, hp)
                metrics = run_axis(jax.device_get(metrics), spec.batched)
                keep = min(chunk_len, config.num_iterations - done)
                finite = np.asarray(metrics.all_finite[:, :keep]).all(axis=0)
                if not finite.all():
                    # Keep metrics and checkpoint of the last good chunk boundary.
                    diverged_at = done + int(np.argmin(finite)) + 1
                    break
                runner = new_runner
                seconds = (time.perf_counter() - t) / keep
                chunk_rows = reporting.metrics_rows(metrics, keep, seconds, labels)
                writer.write(chunk_rows)
                rundir.save_checkpoint(run_dir, config, runner)
                rows += chunk_rows
                done += keep
                steps_run += keep * config.batch_size * spec.num_runs
                train_s += time.perf_counter() - t
                for i in range(keep):
                    iteration = chunk_rows[i * spec.num_runs : (i + 1) * spec.num_runs]
                    say(
                        reporting.format_iteration(
                            reporting.iteration_summary(iteration), spec.num_runs
                        )
                    )
                bar.update(keep)
                latest = reporting.recent_mean_return(chunk_rows, 1)
                bar.set_postfix(ret=f"{latest:.1f}")
        except KeyboardInterrupt:  # a second Ctrl-C: abort mid-chunk
            stop.requested = True
        finally:
            bar.close()
            writer.close()

    if rows:
        title = f"ppo_jax on {config.env_name}"
        reporting.plot_learning_curve(run_dir, title, sweep_fields)
        if sweep_fields:
            table = reporting.write_sweep_table(run_dir, rows, sweep_fields)
            print(table.read_text(), end="")
    timesteps = done * config.batch_size
    sps = steps_run / train_s if train_s > 0 else 0.0
    if diverged_at is not None:
        print(
            f"error: training diverged: non-finite loss or parameters at iteration "
            f"{diverged_at}; stopped, keeping metrics and the checkpoint of "
            f"iteration {done} (the last finite chunk) in {run_dir}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if stop.requested:
        print(
            f"stopped after iteration {done} of {config.num_iterations}: metrics "
            f"and checkpoint up to there are in {run_dir}; continue with "
            f"--resume {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"final: timesteps={timesteps} mean_return="
        f"{reporting.recent_mean_return(rows):.2f} sps={sps:.0f} "
        f"compile_s={compile_s:.2f}",
        flush=True,
    )
    return 0
