"""The host loop of a training run: compiled chunks, progress, checkpoints.

One compiled chunk of ``save_freq`` iterations (for all runs of a
:class:`~ppo_jax.config.runspec.RunSpec` at once) is called in a loop. After each
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
iteration-0 checkpoint); 0 too when a callback asked to stop early
(:mod:`ppo_jax.run.callbacks`: checkpoint and metrics of that chunk kept);
5, with several processes, a peer process was lost
(:data:`ppo_jax.run.distributed.EXIT_PEER_LOST`). Bad input raises ConfigError,
RunDirError or ResourceError before anything compiles (the CLI: one sentence,
exit code 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from ppo_jax.algo.ppo import RunnerState, build_pipeline
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.runspec import RunSpec
from ppo_jax.envs import Environment
from ppo_jax.envs.contract import PyTree, describe
from ppo_jax.networks import NetworkFactory
from ppo_jax.run import distributed, reporting, rundir
from ppo_jax.run.callbacks import Callbacks, MetricsCallback, PolicyCallback
from ppo_jax.run.experiment import Experiment, run_axis
from ppo_jax.run.loggers import (
    Logger,
    LoggerSpec,
    check_loggers_can_start,
    load_logger_spec,
    open_loggers,
    save_logger_spec,
)
from ppo_jax.run.resources import check_memory
from ppo_jax.run.signals import GracefulStop, signals_deferred, writing_files

EXIT_DIVERGED = 3
EXIT_WRITE_FAILED = 4
EXIT_INTERRUPTED = 130


def run_training(
    spec: RunSpec | None,
    run_dir: str | Path | None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
    loggers: LoggerSpec | None = None,
    on_metrics: MetricsCallback | Sequence[MetricsCallback] = (),
    on_policy: PolicyCallback | Sequence[PolicyCallback] = (),
) -> int:
    """Train ``spec`` into ``run_dir`` (or continue the run in ``resume``).

    ``env``, ``env_params`` and ``network`` bring your own environment object
    and network factory, as for :func:`ppo_jax.make_train` (pass the same ones
    again to resume such a run). ``run_dir=None``: ``runs/ENV-DATE-TIME``.
    ``loggers``: TensorBoard and wandb besides the CSV (see
    :mod:`ppo_jax.run.loggers`); a resumed run keeps the ones it started with.
    ``on_metrics``/``on_policy``: functions (one or a sequence) called after
    every chunk with its new metrics rows / each run's
    :class:`~ppo_jax.run.callbacks.PolicySnapshot`; one that returns a
    :class:`~ppo_jax.run.callbacks.StopRequest` ends the run there (exit code
    0), one that raises ends it too and its exception propagates; either way
    the checkpoint and metrics of that chunk are on disk (see
    :mod:`ppo_jax.run.callbacks`).

    Returns the exit code (see the module's docstring). Raises ConfigError,
    RunDirError or ResourceError for bad input, before anything compiles, and
    KeyboardInterrupt on a second Ctrl-C.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    resume = None if resume is None else Path(resume)
    callbacks = Callbacks(_sequence(on_metrics), _sequence(on_policy)).validate()
    if callbacks and jax.process_count() > 1:
        raise ValueError(
            "callbacks (on_metrics, on_policy) run with one process only: the "
            "processes of a run cannot agree on a callback's stop"
        )
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
        check_loggers_can_start(run_dir, logger_spec)
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
                start = Start(restored, done, rows, note)
            else:
                if writes:
                    rundir.prepare_run_dir(run_dir, overwrite)
                    rundir.save_config(run_dir, spec.config)
                    rundir.save_run_spec(run_dir, spec)
                    save_logger_spec(run_dir, logger_spec)
                start = Start(None, 0, [], "")
            try:
                return _train(
                    experiment, run_dir, start, stop, quiet, logger_spec, callbacks
                )
            except Exception:
                distributed.stop_if_peer_lost()  # a lost peer: its sentence
                raise


class Start(NamedTuple):
    """Where the chunk loop starts: a fresh run or a resumed one."""

    runner: RunnerState | None  # the restored checkpoint; None: initialize
    done: int  # iterations already run (and in the checkpoint)
    rows: list[rundir.Row]  # metrics rows up to ``done``
    note: str  # a line about the rows kept on resume ("" for none)


class Outcome(NamedTuple):
    """How the loop of chunks ended, as a value: the host loop reports it in
    one place (:func:`_report`)."""

    exit_code: int  # 0, EXIT_DIVERGED, EXIT_WRITE_FAILED or EXIT_INTERRUPTED
    done: int  # the iteration whose checkpoint and metrics are on disk
    rows: list[rundir.Row]  # every metrics row up to ``done``
    steps_per_second: float  # env steps over all runs, while chunks ran
    problem: str = ""  # what went wrong: the write error, or where it diverged
    stopped_early: str = ""  # a callback's reason to stop (exit code 0)


def _train(
    experiment: Experiment,
    run_dir: Path,
    start: Start,
    stop: GracefulStop,
    quiet: bool,
    logger_spec: LoggerSpec,
    callbacks: Callbacks,
) -> int:
    """Compile, then run the chunks from ``start``; returns the exit code."""
    config = experiment.spec.config
    _print_header(experiment, run_dir, start.note)
    init, run_chunk, compile_s = _compile(experiment)
    if start.runner is not None:
        runner = experiment.place(start.runner)
        print(f"resuming after iteration {start.done}", flush=True)
    else:
        runner = init(experiment.keys, experiment.hparams)
        with signals_deferred():  # iteration 0: a good checkpoint to resume from
            _save_checkpoint(experiment, run_dir, runner)
    outputs = _Outputs(experiment, run_dir, start, logger_spec)
    try:
        outcome = _run_chunks(experiment, run_dir, run_chunk, runner, start, stop,
                              outputs, quiet, callbacks)  # fmt: skip
    finally:
        outputs.close()
    if distributed.is_writer():
        sweep_fields = tuple(name for name, _ in experiment.spec.sweep)
        _write_figures(run_dir, outcome.rows, config.env_name, sweep_fields)
    return _report(outcome, config, run_dir, compile_s)


def _print_header(experiment: Experiment, run_dir: Path, note: str) -> None:
    spec, config = experiment.spec, experiment.spec.config
    runs = f", {spec.num_runs} runs" if spec.batched else ""
    print(
        f"ppo_jax: {config.env_name}, {config.num_envs} envs x "
        f"{config.rollout_length} steps = {config.batch_size} steps/iteration, "
        f"{config.num_iterations} iterations{runs}, {len(jax.devices())} "
        f"device(s), run dir {run_dir}",
        flush=True,
    )
    for line in (experiment.note, note):
        if line:
            print(line, flush=True)


def _compile(experiment: Experiment) -> tuple[Callable, Callable, float]:
    """``(init, run_chunk, seconds)``: compiled once, ahead of time, so that
    compile time is measured on its own."""
    spec = experiment.spec
    runs = f", {spec.num_runs} runs" if spec.batched else ""
    what = f"{experiment.chunk_iterations} iterations per call{runs}"
    with CompileProgress(what) as progress:
        init, run_chunk = experiment.compile(progress.stage)
    print(f"compiled in {progress.total_s:.2f} s ({progress.breakdown()})", flush=True)
    return init, run_chunk, progress.total_s


class _Outputs:
    """Where a chunk's rows go: metrics.csv (process 0 only), the loggers, the
    progress lines and bar."""

    def __init__(
        self,
        experiment: Experiment,
        run_dir: Path,
        start: Start,
        logger_spec: LoggerSpec,
    ):
        spec = experiment.spec
        writes = distributed.is_writer()
        sweep_fields = tuple(name for name, _ in spec.sweep)
        self.writer: rundir.MetricsWriter | rundir.NoMetricsWriter = (
            rundir.MetricsWriter(
                run_dir, reporting.columns(sweep_fields), list(start.rows)
            )
            if writes
            else rundir.NoMetricsWriter()
        )
        self.loggers: list[Logger] = []
        if logger_spec.loggers and writes:
            self.loggers, logger_spec = open_loggers(
                run_dir, spec, logger_spec, resume=start.runner is not None
            )
            save_logger_spec(run_dir, logger_spec)  # with the wandb run ids
        self.bar = tqdm(
            total=spec.config.num_iterations,
            initial=start.done,
            unit="it",
            disable=not sys.stderr.isatty(),
        )

    def log(self, rows: list[rundir.Row], num_runs: int, quiet: bool) -> None:
        """The loggers, a progress line per iteration and the bar (metrics.csv
        is written with the checkpoint, before this)."""
        self.loggers = _log(self.loggers, lambda logger: logger.write(rows))
        iterations = len(rows) // num_runs
        for i in range(iterations):
            if not quiet:
                iteration = rows[i * num_runs : (i + 1) * num_runs]
                summary = reporting.iteration_summary(iteration)
                line = reporting.format_iteration(summary, num_runs)
                tqdm.write(line, file=sys.stdout)
        self.bar.update(iterations)
        latest = reporting.recent_mean_return(rows, 1)
        self.bar.set_postfix(ret=f"{latest:.1f}")

    def video(self, run: int, path: Path, tag: str, step: int) -> None:
        """An animated GIF of run ``run`` to the loggers that show videos."""
        self.loggers = _log(
            self.loggers, lambda logger: logger.video(run, path, tag, step)
        )

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
        for logger in self.loggers:
            logger.close()


def _run_chunks(
    experiment: Experiment,
    run_dir: Path,
    run_chunk: Callable,
    runner: RunnerState,
    start: Start,
    stop: GracefulStop,
    outputs: _Outputs,
    quiet: bool,
    callbacks: Callbacks,
) -> Outcome:
    """Run chunks until the last iteration, a stop request, a non-finite
    chunk or a failed write; each good chunk is checkpointed, then its rows
    written and reported."""
    spec, config = experiment.spec, experiment.spec.config
    labels = spec.run_labels()
    chunk_len = experiment.chunk_iterations
    done, rows = start.done, list(start.rows)
    train_s, steps_run = 0.0, 0

    def outcome(exit_code: int, problem: str = "", early: str = "") -> Outcome:
        sps = steps_run / train_s if train_s > 0 else 0.0
        return Outcome(exit_code, done, rows, sps, problem, early)

    for _ in range(math.ceil((config.num_iterations - done) / chunk_len)):
        if stop.requested:
            return outcome(EXIT_INTERRUPTED)
        t = time.perf_counter()
        new_runner, metrics = run_chunk(runner, experiment.hparams)
        metrics = run_axis(jax.device_get(metrics), spec.batched)
        keep = min(chunk_len, config.num_iterations - done)
        finite = np.asarray(metrics.all_finite[:, :keep]).all(axis=0)
        if not finite.all():
            # Keep metrics and checkpoint of the last good chunk boundary.
            diverged_at = done + int(np.argmin(finite)) + 1
            return outcome(EXIT_DIVERGED, f"at iteration {diverged_at}")
        seconds = (time.perf_counter() - t) / keep
        chunk_rows = reporting.metrics_rows(metrics, keep, seconds, labels)
        try:
            # The checkpoint first: metrics.csv never runs ahead of it.
            with signals_deferred():
                _save_checkpoint(
                    experiment,
                    run_dir,
                    new_runner,
                    functools.partial(outputs.writer.write, chunk_rows),
                )
        except rundir.RunDirError as e:
            return outcome(EXIT_WRITE_FAILED, str(e))
        runner = new_runner
        rows += chunk_rows
        done += keep
        steps_run += keep * config.batch_size * spec.num_runs
        train_s += time.perf_counter() - t
        outputs.log(chunk_rows, spec.num_runs, quiet)
        if callbacks:
            request = callbacks.after_chunk(
                chunk_rows, experiment.pipeline, runner, labels, run_dir,
                outputs.video,
            )  # fmt: skip
            if request is not None and done < config.num_iterations:
                return outcome(0, early=request.reason)
    # A stop requested during the last chunk still ends as stopped (130).
    return outcome(EXIT_INTERRUPTED if stop.requested else 0)


def _report(
    outcome: Outcome, config: PPOConfig, run_dir: Path, compile_s: float
) -> int:
    """The run's last words, on stderr for a failure or stop, on stdout for
    success (the ``final:`` line); returns the exit code."""
    done = outcome.done
    if outcome.exit_code == EXIT_WRITE_FAILED:
        print(
            f"error: {outcome.problem}; stopped, keeping the checkpoint of "
            f"iteration {done} and the metrics up to it in {run_dir}",
            file=sys.stderr,
        )
    elif outcome.exit_code == EXIT_DIVERGED:
        print(
            f"error: training diverged: non-finite loss or parameters "
            f"{outcome.problem}; stopped, keeping metrics and the checkpoint of "
            f"iteration {done} (the last finite chunk) in {run_dir}",
            file=sys.stderr,
        )
    elif outcome.exit_code == EXIT_INTERRUPTED:
        print(
            f"stopped after iteration {done} of {config.num_iterations}: metrics "
            f"and checkpoint up to there are in {run_dir}; continue with "
            f"--resume {run_dir}",
            file=sys.stderr,
        )
    else:
        if outcome.stopped_early:
            print(
                f"stopped early after iteration {done} of {config.num_iterations} "
                f"({outcome.stopped_early}): metrics and checkpoint up to there "
                f"are in {run_dir}; --resume {run_dir} would continue it",
                flush=True,
            )
        evaluated = ""
        if reporting.has_evaluations(outcome.rows):
            last = reporting.final_eval_returns(outcome.rows)
            evaluated = f"eval_return={reporting.mean_of_runs(last):.2f} "
        print(
            f"final: timesteps={done * config.batch_size} mean_return="
            f"{reporting.recent_mean_return(outcome.rows):.2f} {evaluated}"
            f"sps={outcome.steps_per_second:.0f} compile_s={compile_s:.2f}",
            flush=True,
        )
        context = reporting.tutorial_context(config)
        if context is not None:
            print(context, flush=True)
    return outcome.exit_code


def _save_checkpoint(
    experiment: Experiment,
    run_dir: Path,
    runner: RunnerState,
    then: Callable[[], None] = lambda: None,
) -> None:
    """Checkpoint ``runner`` and ``then`` write what goes with it (its metrics
    rows): every process gathers it (a collective), process 0 writes it. The
    writes run inside :func:`writing_files`, so that a process ended for a lost
    peer never stops between the two files."""
    whole = experiment.gather(runner)
    with writing_files():
        if distributed.is_writer():
            rundir.save_checkpoint(run_dir, experiment.spec.config, whole)
        then()


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


def _log(loggers: list[Logger], write: Callable[[Logger], None]) -> list[Logger]:
    """``write`` to each logger (its rows, a video); one that fails (full
    disk, lost network) is dropped with a note: the CSV and checkpoint carry
    the run on."""
    kept = []
    for logger in loggers:
        try:
            write(logger)
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


def _sequence(callbacks: Callable | Sequence[Callable]) -> tuple[Callable, ...]:
    """One callback or several, as a tuple."""
    return (callbacks,) if callable(callbacks) else tuple(callbacks)
