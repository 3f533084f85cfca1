"""The host loop of a training run: compiled chunks, progress, checkpoints.

One compiled chunk of ``save_freq`` iterations (for all runs of a
:class:`~ppo_jax.runspec.RunSpec` at once) is called in a loop. After each
chunk the whole runner state is checkpointed atomically, then the rows that
describe it are appended to ``metrics.csv`` and the per-iteration summaries
printed. Everything that can be checked is checked before compiling (config,
environment, networks, memory, the run directory, a resumed run's files), and
the run directory is locked for the run's whole life.

Exit codes: 0 done; 3 diverged (non-finite loss or parameters: the metrics and
checkpoint of the last finite chunk are kept); 4 a write failed (full disk,
...: the last good checkpoint and the metrics up to it are kept); 130 stopped
by Ctrl-C or SIGTERM (at any moment: at a chunk boundary, with metrics and
checkpoint of the same iteration; during compilation, after writing the
iteration-0 checkpoint). Bad input raises ConfigError, RunDirError or
ResourceError before anything compiles (the CLI: one sentence, exit code 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from ppo_jax import distributed, reporting, rundir
from ppo_jax.envs import Environment
from ppo_jax.envs.contract import PyTree, describe
from ppo_jax.experiment import Experiment, run_axis
from ppo_jax.loggers import (
    Logger,
    LoggerSpec,
    load_logger_spec,
    open_loggers,
    save_logger_spec,
)
from ppo_jax.networks import NetworkFactory
from ppo_jax.pipeline import RunnerState, build_pipeline
from ppo_jax.resources import check_memory
from ppo_jax.runspec import RunSpec
from ppo_jax.signals import GracefulStop, signals_deferred

EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130


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
    loggers: LoggerSpec | None = None,
) -> int:
    """Train ``spec`` into ``run_dir`` (or continue the run in ``resume``).

    ``env``, ``env_params`` and ``network`` bring your own environment object
    and network factory, as for :func:`ppo_jax.make_train` (pass the same ones
    again to resume such a run). ``run_dir=None``: ``runs/ENV-DATE-TIME``.
    ``loggers``: TensorBoard and wandb besides the CSV (see
    :mod:`ppo_jax.loggers`); a resumed run keeps the ones it started with.

    Returns the exit code (see the module's docstring). Raises ConfigError,
    RunDirError or ResourceError for bad input, before anything compiles, and
    KeyboardInterrupt on a second Ctrl-C.
    """
    with GracefulStop() as stop:
        # Validate everything (config, sweep, env, networks, memory) first.
        if resume is not None:
            run_dir = resume
            spec = rundir.load_run_spec(run_dir, rundir.load_config(run_dir))
            loggers = load_logger_spec(run_dir)
        logger_spec = (loggers or LoggerSpec()).validate()
        if spec is None:
            raise ValueError("run_training needs a RunSpec, or resume=RUN_DIR")
        if env is not None and resume is None:
            # The run directory records where the environment came from.
            spec = dataclasses.replace(
                spec, config=spec.config.replace(env_name=describe(env))
            )
        spec = spec.validate()
        pipeline = build_pipeline(
            spec.config, env=env, env_params=env_params, network=network
        )
        check_memory(pipeline, spec.num_runs)
        chunk_len = min(spec.config.save_freq, spec.config.num_iterations)
        experiment = Experiment(spec, pipeline, chunk_len)
        if run_dir is None:
            run_dir = rundir.default_run_dir(spec.config.env_name)
        rundir.check_not_a_file(run_dir)  # before the lock creates it
        stop.check()  # a signal during the checks: stop before touching the disk
        # Then the run directory, locked for the whole run. With several
        # processes, process 0 alone writes it (the others read a checkpoint
        # to resume from: the directory must then be on a shared file system).
        writes = distributed.is_writer()
        with rundir.RunLock(run_dir) if writes else contextlib.nullcontext():
            if resume is not None:
                if writes:
                    rundir.check_writable(run_dir)
                restored = rundir.load_checkpoint(
                    run_dir, experiment.runner_shape, spec.config
                )
                done = int(np.max(restored.iteration))
                rows, note = rundir.rows_up_to(run_dir, done, spec.num_runs)
                start: RunnerState | None = restored
            elif not writes:
                start, done, rows, note = None, 0, [], ""
            else:
                rundir.prepare_run_dir(run_dir, overwrite)
                rundir.save_config(run_dir, spec.config)
                rundir.save_run_spec(run_dir, spec)
                save_logger_spec(run_dir, logger_spec)
                start, done, rows, note = None, 0, [], ""
            return _train(
                experiment, run_dir, start, done, rows, note, stop, quiet, logger_spec
            )


def _train(
    experiment: Experiment,
    run_dir: Path,
    restored: RunnerState | None,
    done: int,
    rows: list[rundir.Row],
    note: str,
    stop: GracefulStop,
    quiet: bool,
    logger_spec: LoggerSpec,
) -> int:
    """Compile, then run the chunks from iteration ``done`` (``restored``'s,
    or a fresh init); returns the exit code."""
    spec = experiment.spec
    config = spec.config
    sweep_fields = tuple(name for name, _ in spec.sweep)
    labels = spec.run_labels()
    chunk_len = min(config.save_freq, config.num_iterations)
    say = (lambda *_: None) if quiet else (lambda s: tqdm.write(s, file=sys.stdout))

    runs = f", {spec.num_runs} runs" if spec.batched else ""
    print(
        f"ppo_jax: {config.env_name}, {config.num_envs} envs x "
        f"{config.rollout_length} steps = {config.batch_size} steps/iteration, "
        f"{config.num_iterations} iterations{runs}, {len(jax.devices())} "
        f"device(s), run dir {run_dir}",
        flush=True,
    )
    if experiment.note:
        print(experiment.note, flush=True)
    if note:
        print(note, flush=True)

    # Compile once, ahead of time, so compile time is measured on its own.
    what = f"{chunk_len} iterations per call{runs}"
    with CompileProgress(what) as progress:
        init, run_chunk = experiment.compile(progress.stage)
    compile_s = progress.total_s
    print(f"compiled in {compile_s:.2f} s ({progress.breakdown()})", flush=True)

    hp = experiment.hparams
    if restored is not None:
        runner = experiment.place(restored)
        print(f"resuming after iteration {done}", flush=True)
    else:
        runner = init(experiment.keys, hp)
        with signals_deferred():  # iteration 0: a good checkpoint to resume from
            _save_checkpoint(experiment, run_dir, runner)
    writes = distributed.is_writer()
    writer = (
        rundir.MetricsWriter(run_dir, reporting.columns(sweep_fields), rows)
        if writes
        else rundir.NoMetricsWriter()
    )
    loggers: list[Logger] = []
    if logger_spec.loggers and writes:
        loggers, logger_spec = open_loggers(
            run_dir, spec, logger_spec, resume=restored is not None
        )
        save_logger_spec(run_dir, logger_spec)  # with the wandb run ids
    train_s, steps_run = 0.0, 0
    diverged_at, write_error = None, None
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
            seconds = (time.perf_counter() - t) / keep
            chunk_rows = reporting.metrics_rows(metrics, keep, seconds, labels)
            try:
                # The checkpoint first: metrics.csv never runs ahead of it.
                with signals_deferred():
                    _save_checkpoint(experiment, run_dir, new_runner)
                    writer.write(chunk_rows)
            except rundir.RunDirError as e:
                write_error = str(e)
                break
            runner = new_runner
            loggers = _log(loggers, chunk_rows)
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
    finally:
        bar.close()
        writer.close()
        for logger in loggers:
            logger.close()

    if writes:
        _write_figures(run_dir, rows, config.env_name, sweep_fields)
    if write_error is not None:
        print(
            f"error: {write_error}; stopped, keeping the checkpoint of iteration "
            f"{done} and the metrics up to it in {run_dir}",
            file=sys.stderr,
        )
        return EXIT_WRITE_FAILED
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
    timesteps = done * config.batch_size
    sps = steps_run / train_s if train_s > 0 else 0.0
    print(
        f"final: timesteps={timesteps} mean_return="
        f"{reporting.recent_mean_return(rows):.2f} sps={sps:.0f} "
        f"compile_s={compile_s:.2f}",
        flush=True,
    )
    context = reporting.tutorial_context(config)
    if context is not None:
        print(context, flush=True)
    return 0


def _save_checkpoint(
    experiment: Experiment, run_dir: Path, runner: RunnerState
) -> None:
    """Checkpoint ``runner``: every process gathers it, process 0 writes it."""
    whole = experiment.gather(runner)
    if distributed.is_writer():
        rundir.save_checkpoint(run_dir, experiment.spec.config, whole)


class CompileProgress:
    """Says what compilation is doing and for how long (it can take tens of
    seconds): a line per stage; then, on a terminal, the elapsed seconds
    updated in place every second, elsewhere a line every 30 s."""

    STAGES = {
        "tracing": "tracing and lowering the training program (JAX)",
        "compiling": "optimizing and generating code (XLA)",
    }

    def __init__(self, what: str):
        self.what = what
        self.tty = sys.stdout.isatty()
        self.times: dict[str, float] = {}
        self.current: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._start = self._stage_start = time.perf_counter()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> CompileProgress:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        with self._lock:
            if self.current is not None:
                self.times[self.current] = now - self._stage_start
            self.current, self._stage_start = name, now
            self._line(f"compiling ({self.what}): {self.STAGES.get(name, name)} ...")

    def _line(self, text: str) -> None:
        print(("\r\033[K" if self.tty else "") + text, end="" if self.tty else "\n")
        sys.stdout.flush()

    def _tick(self) -> None:
        interval = 1.0 if self.tty else 30.0
        while not self._done.wait(interval):
            with self._lock:
                elapsed = time.perf_counter() - self._start
                stage = self.STAGES.get(self.current or "", "")
                self._line(f"compiling ({self.what}): {stage} ... {elapsed:.0f} s")

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        now = time.perf_counter()
        if self.current is not None:
            self.times[self.current] = now - self._stage_start
        self.total_s = now - self._start
        if self.tty:
            print()

    def breakdown(self) -> str:
        names = {"tracing": "tracing", "compiling": "XLA"}
        return ", ".join(f"{names.get(k, k)} {v:.2f} s" for k, v in self.times.items())


def _log(loggers: list[Logger], rows: list[rundir.Row]) -> list[Logger]:
    """Feed ``rows`` to the loggers; one that fails (full disk, lost network)
    is dropped with a note: the CSV and checkpoint carry the run on."""
    kept = []
    for logger in loggers:
        try:
            logger.write(rows)
            kept.append(logger)
        except Exception as e:  # a logger's failure must not end the run
            print(
                f"note: {type(logger).__name__} stopped logging "
                f"({type(e).__name__}: {e}); metrics.csv has every row",
                file=sys.stderr,
            )
    return kept


def _write_figures(
    run_dir: Path, rows: list[rundir.Row], env_name: str, sweep_fields: tuple[str, ...]
) -> None:
    """The learning curve and sweep table; a failure to write them (a full
    disk) is a note on stdout, not the end of the run's report."""
    if not rows:
        return
    try:
        reporting.plot_learning_curve(run_dir, f"ppo_jax on {env_name}", sweep_fields)
        if sweep_fields:
            table = reporting.write_sweep_table(run_dir, rows, sweep_fields)
            print(table.read_text(), end="")
    except OSError as e:
        print(f"note: could not write the plot or sweep table ({e.strerror})")
