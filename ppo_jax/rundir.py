"""The run directory: every file's name and format, in one place.

A run directory holds:

- ``config.json``: every :class:`PPOConfig` field (``PPOConfig.to_dict``);
- ``run.json``: ``{"num_seeds": K, "sweep": {field: [values]}}`` (a RunSpec);
- ``checkpoint.msgpack``: msgpack (flax serialization) of ``{"format": 1,
  "env_name": str, "iteration": int, "config": {...}, "runner": the
  RunnerState as a state dict, PRNG key as key data}``;
- ``metrics.csv``: one row per (iteration, run);
- ``learning_curve.png``, ``sweep.md``, ``sweep.csv``: drawn and written by
  :mod:`ppo_jax.reporting`.

Files are written to a temporary file in the same directory and renamed over
the old one, so a kill mid-write leaves the previous version intact. Loading
checks the checkpoint's format version and that it belongs to ``config.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from ppo_jax.config import PPOConfig
from ppo_jax.pipeline import RunnerState
from ppo_jax.runspec import RunSpec

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.msgpack"
METRICS_FILE = "metrics.csv"
PLOT_FILE = "learning_curve.png"
SWEEP_TABLE = "sweep.md"
SWEEP_CSV = "sweep.csv"
FORMAT_VERSION = 1  # of checkpoint.msgpack; loading refuses any other

Row = dict[str, Any]  # one metrics.csv row: column -> int, float or str


class RunDirError(RuntimeError):
    """A run directory or one of its files cannot be used; the message says why."""


class CheckpointError(RunDirError):
    """A checkpoint (or the config beside it) cannot be used."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


# ------------------------------------------------------------- the directory
def default_run_dir(env_name: str) -> Path:
    """``runs/ENV-DATE-TIME`` (``/`` and ``:`` of env names become ``-``)."""
    label = env_name.replace("/", "-").replace(":", "-")
    return Path("runs") / f"{label}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_run_dir(run_dir: Path | None, env_name: str, overwrite: bool) -> Path:
    """Create (or, with ``overwrite``, reuse) a writable run directory."""
    if run_dir is None:
        run_dir = default_run_dir(env_name)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(
            f"run directory {str(run_dir)!r} exists and is not a directory"
        )
    if (run_dir / CHECKPOINT_FILE).exists() and not overwrite:
        raise RunDirError(
            f"run directory {str(run_dir)!r} already holds a run; "
            "pass --overwrite to replace it or choose another --run-dir"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable ({e.strerror})"
        ) from e
    return run_dir


# ---------------------------------------------------------- config.json, run.json
def save_config(run_dir: Path, config: PPOConfig) -> None:
    _write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


def load_config(run_dir: Path) -> PPOConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise RunDirError(f"{str(path)!r} is missing: not a ppo_jax run directory")
    try:
        return PPOConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a valid ppo_jax config ({e})"
        ) from e


def save_run_spec(run_dir: Path, spec: RunSpec) -> None:
    _write_json(Path(run_dir) / RUN_FILE, spec.to_dict())


def load_run_spec(run_dir: Path, config: PPOConfig) -> RunSpec:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():  # a single run (or one written before run.json)
        return RunSpec(config)
    try:
        return RunSpec.from_dict(config, json.loads(path.read_text()))
    except (ValueError, TypeError, AttributeError) as e:
        raise RunDirError(f"{str(path)!r} is not a valid run file ({e})") from e


# ------------------------------------------------------------ checkpoint.msgpack
def save_checkpoint(run_dir: Path, config: PPOConfig, runner: RunnerState) -> Path:
    """Write ``runner`` (on host or device, with or without a run axis)."""
    runner = jax.device_get(
        dataclasses.replace(runner, key=jax.random.key_data(runner.key))
    )
    payload = {
        "format": FORMAT_VERSION,
        "env_name": config.env_name,
        "iteration": int(np.max(runner.iteration)),
        "config": config.to_dict(),
        "runner": serialization.to_state_dict(runner),
    }
    path = Path(run_dir) / CHECKPOINT_FILE
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))
    return path


def load_checkpoint(
    run_dir: Path, template: RunnerState, config: PPOConfig
) -> RunnerState:
    """Restore a RunnerState shaped like ``template`` from ``run_dir``.

    ``template`` is any RunnerState of ``config`` (for instance
    :func:`ppo_jax.experiment.runner_template`); ``config`` is the run's
    ``config.json``, which the checkpoint must have been written with.
    Returns numpy leaves and a typed PRNG key.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: the run saved no checkpoint")
    key_template = jax.eval_shape(jax.random.key_data, template.key)
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        version = payload.get("format")
    except Exception as e:  # msgpack errors of any kind
        raise CheckpointError(f"{str(path)!r} is unreadable ({e})") from e
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {version!r}; this version of "
            f"ppo_jax reads format {FORMAT_VERSION}"
        )
    try:
        saved_config = PPOConfig.from_dict(payload["config"])
        runner = serialization.from_state_dict(
            dataclasses.replace(template, key=key_template), payload["runner"]
        )
    except Exception as e:  # structure or shape errors alike
        raise CheckpointError(
            f"{str(path)!r} is unreadable or does not match this config ({e})"
        ) from e
    _check_shapes(dataclasses.replace(template, key=key_template), runner, path)
    _check_same_config(saved_config, config, run_dir)
    return dataclasses.replace(runner, key=jax.random.wrap_key_data(runner.key))


def _check_shapes(template: RunnerState, restored: RunnerState, path: Path) -> None:
    for (kp, want), got in zip(
        jax.tree_util.tree_leaves_with_path(template),
        jax.tree.leaves(restored),
        strict=True,
    ):
        if tuple(want.shape) != tuple(np.shape(got)):
            name = jax.tree_util.keystr(kp)
            raise CheckpointError(
                f"{str(path)!r} does not match this config: {name} has shape "
                f"{tuple(np.shape(got))}, expected {tuple(want.shape)}"
            )


def _check_same_config(saved: PPOConfig, config: PPOConfig, run_dir: Path) -> None:
    if saved == config:
        return
    field = next(k for k, v in config.to_dict().items() if saved.to_dict()[k] != v)
    raise CheckpointError(
        f"the checkpoint in {str(run_dir)!r} was written for {field}="
        f"{getattr(saved, field)!r} but config.json says "
        f"{field}={getattr(config, field)!r}: the files come from different runs"
    )


# ------------------------------------------------------------------ metrics.csv
class MetricsWriter:
    """Writes ``metrics.csv``, flushing after every chunk.

    ``keep_rows``: rows already on disk to keep (a resumed run rewrites the file
    with the rows up to its checkpoint, then appends).
    """

    def __init__(
        self, run_dir: Path, fields: tuple[str, ...], keep_rows: Iterable[Row] = ()
    ):
        self.path = Path(run_dir) / METRICS_FILE
        self._file = open(self.path, "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        self._writer.writeheader()
        self.write(list(keep_rows))

    def write(self, rows: list[Row]) -> None:
        self._writer.writerows(rows)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_rows(run_dir: Path) -> list[Row]:
    """Rows of ``metrics.csv`` with numbers parsed (ints stay ints)."""
    with open(Path(run_dir) / METRICS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)
