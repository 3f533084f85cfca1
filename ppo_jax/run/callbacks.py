"""Callbacks of a training run: Python functions that the host loop calls
between compiled chunks, never inside the compiled program.

``run_training(..., on_metrics=f, on_policy=g)``:

- ``f(rows)`` receives each chunk's new ``metrics.csv`` rows (dicts, one per
  iteration and run, in order): every row of the call's chunks exactly once;
- ``g(snapshot)`` receives, after each chunk and for each run of a sweep, a
  :class:`PolicySnapshot`: the iteration, the run's label, and its runner
  state on the host, whose :meth:`~PolicySnapshot.policy` acts exactly as
  :func:`ppo_jax.load_policy` on the checkpoint of that iteration.

Both run after the chunk's checkpoint and metrics rows are on disk. A
callback that returns a :class:`StopRequest` ends the run there (early
stopping): ``run_training`` returns 0 and the run directory holds the
checkpoint and metrics of that iteration (``--resume`` continues it). A
callback that raises stops the run as well, its files as consistent, and the
exception propagates out of ``run_training``. With several processes,
callbacks are refused (the processes would have to agree on a stop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from ppo_jax.algo.ppo import Pipeline, RunnerState
from ppo_jax.run.host_policy import NumpyPolicy, RecurrentNumpyPolicy, numpy_policy
from ppo_jax.run.rundir import Row


class StopRequest(NamedTuple):
    """What a callback returns to end the run after the current chunk."""

    reason: str = "a callback asked to stop"


@dataclasses.dataclass(frozen=True)
class PolicySnapshot:
    """One run's policy after a chunk, on the host."""

    iteration: int  # iterations completed (the checkpoint's)
    run: int  # index of the run in a multi-seed or sweep run (0 alone)
    label: dict[str, Any]  # its seed and swept values
    pipeline: Pipeline
    runner: RunnerState  # this run's state (numpy leaves, no run axis)
    run_dir: Path
    log_video: Callable[[Path, str], None]  # (gif file, tag): to the loggers

    @property
    def timesteps(self) -> int:
        """Environment steps this run has simulated."""
        return self.iteration * self.pipeline.config.batch_size

    def policy(self) -> NumpyPolicy | RecurrentNumpyPolicy:
        """The deterministic policy, as :func:`ppo_jax.load_policy` gives it."""
        return numpy_policy(self.pipeline, self.runner)


MetricsCallback = Callable[[list[Row]], "StopRequest | None"]
PolicyCallback = Callable[[PolicySnapshot], "StopRequest | None"]


@dataclasses.dataclass(frozen=True)
class Callbacks:
    """The callbacks of a run (empty: none)."""

    on_metrics: Sequence[MetricsCallback] = ()
    on_policy: Sequence[PolicyCallback] = ()

    def __bool__(self) -> bool:
        return bool(self.on_metrics or self.on_policy)

    def validate(self) -> Callbacks:
        for name, group in (("on_metrics", self.on_metrics),
                            ("on_policy", self.on_policy)):  # fmt: skip
            for callback in group:
                if not callable(callback):
                    raise TypeError(
                        f"{name} takes functions; {callback!r} is not callable"
                    )
        return self

    def after_chunk(
        self,
        rows: list[Row],
        pipeline: Pipeline,
        runner: RunnerState,
        labels: list[dict[str, Any]],
        run_dir: Path,
        log_video: Callable[[int, Path, str, int], None],
    ) -> StopRequest | None:
        """Call every callback on a chunk's rows and runner (with a leading
        run axis when there are several ``labels``); the first stop request,
        if any (every callback still runs)."""
        stop: StopRequest | None = None
        for on_metrics in self.on_metrics:
            stop = _first(stop, on_metrics(list(rows)))
        if not self.on_policy:
            return stop
        host = jax.device_get(runner)
        iteration = int(host.iteration.max())
        step = iteration * pipeline.config.batch_size
        for run, label in enumerate(labels):
            one = host if len(labels) == 1 else _run_of(host, run)
            snapshot = PolicySnapshot(
                iteration, run, dict(label), pipeline, one, run_dir,
                _video_of_run(log_video, run, step),
            )  # fmt: skip
            for on_policy in self.on_policy:
                stop = _first(stop, on_policy(snapshot))
        return stop


def _first(stop: StopRequest | None, result: object) -> StopRequest | None:
    if stop is None and isinstance(result, StopRequest):
        return result
    return stop


def _video_of_run(
    log_video: Callable[[int, Path, str, int], None], run: int, step: int
) -> Callable[[Path, str], None]:
    def video(path: Path, tag: str = "policy") -> None:
        log_video(run, Path(path), tag, step)

    return video


def _run_of(runner: RunnerState, run: int) -> RunnerState:
    """Run ``run``'s state of a runner with a leading run axis."""
    one: RunnerState = jax.tree.map(lambda x: x[run], runner)
    return one
