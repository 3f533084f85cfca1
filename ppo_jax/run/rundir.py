"""The run directory: every file's name and format, in one place.

A run directory holds:

- ``config.json``: every :class:`PPOConfig` field (``PPOConfig.to_dict``);
- ``run.json``: ``{"num_seeds": K, "sweep": {field: [values]}}`` (a RunSpec);
- ``checkpoint.msgpack``: msgpack (flax serialization) of ``{"format": 1,
  "env_name": str, "iteration": int, "config": {...}, "runner": the
  RunnerState as a state dict, PRNG key as key data}``;
- ``metrics.csv``: one row per (iteration, run);
- ``learning_curve.png``, ``sweep.md``, ``sweep.csv``: drawn and written by
  :mod:`ppo_jax.run.reporting`.

Files are written to a temporary file of a unique name in the same directory
and renamed over the old one, so a kill mid-write leaves the previous version
intact (a failed write removes its temporary file). A run holds an exclusive
lock on ``.lock`` for its whole life, so two processes never write one run.
The checkpoint is saved before the metrics rows that describe it are
appended, so ``metrics.csv`` never runs ahead of it; reading tolerates a
cut or damaged tail (a kill mid-append). Loading checks every file before
anything compiles: the config, the run file, the checkpoint's format version
and that it belongs to ``config.json``.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from ppo_jax.algo.ppo import RunnerState
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.runspec import RunSpec

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.msgpack"
METRICS_FILE = "metrics.csv"
PLOT_FILE = "learning_curve.png"
SWEEP_TABLE = "sweep.md"
SWEEP_CSV = "sweep.csv"
LOCK_FILE = ".lock"
LOGGERS_FILE = "loggers.json"
TENSORBOARD_DIR = "tensorboard"  # --logger tensorboard: one event dir per run
WANDB_DIR = "wandb"  # --logger wandb: wandb's own files
# What a run writes: --overwrite removes exactly these (nothing else).
RUN_FILES = (
    CONFIG_FILE, RUN_FILE, CHECKPOINT_FILE, METRICS_FILE, PLOT_FILE, SWEEP_TABLE,
    SWEEP_CSV, LOGGERS_FILE,
)  # fmt: skip
RUN_DIRS = (TENSORBOARD_DIR, WANDB_DIR)
FORMAT_VERSION = 1  # of checkpoint.msgpack; loading refuses any other

Row = dict[str, Any]  # one metrics.csv row: column -> int, float or str


class RunDirError(RuntimeError):
    """A run directory or one of its files cannot be used; the message says why."""


class CheckpointError(RunDirError):
    """A checkpoint (or the config beside it) cannot be used."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` through a uniquely named temporary file and a rename.

    Raises:
        RunDirError: the write failed (full disk, read-only directory, ...);
            the old file is untouched and no temporary file is left behind.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # OSError, or a second Ctrl-C mid-write
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise RunDirError(f"cannot write {str(path)!r} ({_reason(e)})") from e
        raise


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


# ------------------------------------------------------------- the directory
def default_run_dir(env_name: str) -> Path:
    """``runs/ENV-DATE-TIME`` (``/`` and ``:`` of env names become ``-``)."""
    label = env_name.replace("/", "-").replace(":", "-")
    return Path("runs") / f"{label}-{datetime.now():%Y%m%d-%H%M%S}"


def check_not_a_file(run_dir: Path) -> None:
    """Refuse a run directory path that names an existing file."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(
            f"run directory {str(run_dir)!r} exists and is not a directory"
        )


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Make ``run_dir`` a writable directory for a new run: created, or, with
    ``overwrite``, emptied of a previous run's files. Hold its
    :class:`RunLock` first."""
    check_not_a_file(run_dir)
    if any((run_dir / name).exists() for name in (CHECKPOINT_FILE, CONFIG_FILE)):
        if not overwrite:
            raise RunDirError(
                f"run directory {str(run_dir)!r} already holds a run; "
                "pass --overwrite to replace it or choose another --run-dir"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(
            f"run directory {str(run_dir)!r} cannot be created ({_reason(e)})"
        ) from e
    check_writable(run_dir)
    if overwrite:
        for name in RUN_FILES:  # what the previous run wrote, nothing else
            (run_dir / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            if (run_dir / name).is_dir() and not (run_dir / name).is_symlink():
                shutil.rmtree(run_dir / name)


def check_writable(run_dir: Path) -> None:
    try:
        probe = run_dir / f".write_test.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RunDirError(
            f"run directory {str(run_dir)!r} is not writable ({_reason(e)})"
        ) from e


class RunLock:
    """An exclusive lock on a run directory for the life of a run.

    A second process on the same directory gets :class:`RunDirError` at once
    (the lock is ``flock`` on ``.lock``: released by the kernel when the
    process ends, however it ends).
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._file: io.TextIOWrapper | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+")
        except OSError as e:
            raise RunDirError(
                f"run directory {str(self.path.parent)!r} is not writable "
                f"({_reason(e)})"
            ) from e
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirError(
                    f"cannot lock {str(self.path)!r} ({_reason(e)})"
                ) from e
            raise RunDirError(
                f"run directory {str(self.path.parent)!r} is in use by another "
                f"ppo_jax process (pid {holder}); wait for it or choose another "
                "--run-dir"
            ) from e
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None


# ---------------------------------------------------------- config.json, run.json
def save_config(run_dir: Path, config: PPOConfig) -> None:
    _write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


MAX_JSON_BYTES = 1 << 20  # config.json, run.json, loggers.json: a few KB each


def read_json_file(path: Path) -> Any:
    """A run directory's JSON file: a regular file of at most 1 MiB of UTF-8
    (a device behind the name is never read). Raises ValueError (or OSError)
    with a one-line reason."""
    if not path.is_file():
        raise ValueError("not a regular file")
    with open(path, "rb") as f:
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
    return json.loads(data.decode("utf-8"))


def load_config(run_dir: Path) -> PPOConfig:
    path = Path(run_dir) / CONFIG_FILE
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} is not a directory")
    if not Path(run_dir).is_dir():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise RunDirError(f"{str(path)!r} is missing: not a ppo_jax run directory")
    try:
        return PPOConfig.from_dict(read_json_file(path)).validate()
    except (ValueError, TypeError, OSError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a valid ppo_jax config ({_one_line(e)})"
        ) from e


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()).rstrip(".")


def save_run_spec(run_dir: Path, spec: RunSpec) -> None:
    _write_json(Path(run_dir) / RUN_FILE, spec.to_dict())


def load_run_spec(run_dir: Path, config: PPOConfig) -> RunSpec:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():  # a single run (or one written before run.json)
        return RunSpec(config)
    try:
        return RunSpec.from_dict(config, read_json_file(path)).validate()
    except (ValueError, TypeError, AttributeError, OSError) as e:
        raise RunDirError(
            f"{str(path)!r} is not a valid run file ({_one_line(e)})"
        ) from e


# ------------------------------------------------------------ checkpoint.msgpack
def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)  # leaves may be Python numbers
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _key_data(tree: Any) -> Any:
    """Typed PRNG keys (the run's, and any an env state holds) as their uint32
    data, which msgpack can store."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _wrap_keys(tree: Any, template: Any) -> Any:
    """The inverse of :func:`_key_data`, where ``template`` has a key."""
    return jax.tree.map(
        lambda x, t: jax.random.wrap_key_data(x) if _is_key(t) else x, tree, template
    )


def save_checkpoint(run_dir: Path, config: PPOConfig, runner: RunnerState) -> Path:
    """Write ``runner`` (on host or device, with or without a run axis)."""
    runner = jax.device_get(_key_data(runner))
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
    :func:`ppo_jax.run.experiment.runner_template`); ``config`` is the run's
    ``config.json``, which the checkpoint must have been written with.
    Returns numpy leaves and a typed PRNG key.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: the run saved no checkpoint")
    data_template = jax.eval_shape(_key_data, template)
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
        envs = payload["runner"]["envs"]
        if "memory" not in envs:
            # Written before networks had memory: feedforward, no carries.
            envs["memory"] = serialization.to_state_dict(data_template.envs.memory)
        runner = serialization.from_state_dict(data_template, payload["runner"])
    except Exception as e:  # structure or shape errors alike
        raise CheckpointError(
            f"{str(path)!r} is unreadable or does not match this config ({e})"
        ) from e
    _check_shapes(data_template, runner, path)
    _check_same_config(saved_config, config, run_dir)
    return _wrap_keys(runner, template)


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
class NoMetricsWriter:
    """A :class:`MetricsWriter` that writes nothing (processes other than 0
    of a multi-process run)."""

    def write(self, rows: list[Row]) -> None:
        pass

    def close(self) -> None:
        pass


class MetricsWriter:
    """Writes ``metrics.csv``: the rows to keep first (atomically), then one
    append per chunk, flushed.

    ``keep_rows``: rows already on disk to keep (a resumed run rewrites the
    file with the rows up to its checkpoint, then appends).
    """

    def __init__(
        self, run_dir: Path, fields: tuple[str, ...], keep_rows: Iterable[Row] = ()
    ):
        self.path = Path(run_dir) / METRICS_FILE
        text = io.StringIO(newline="")
        # restval: rows kept from a run begun before a column existed.
        writer = csv.DictWriter(text, fieldnames=fields, restval="nan")
        writer.writeheader()
        writer.writerows(keep_rows)
        atomic_write_bytes(self.path, text.getvalue().encode())
        try:
            self._file = open(self.path, "a", newline="")
        except OSError as e:
            raise RunDirError(f"cannot write {str(self.path)!r} ({_reason(e)})") from e
        self._writer = csv.DictWriter(self._file, fieldnames=fields)

    def write(self, rows: list[Row]) -> None:
        try:
            self._writer.writerows(rows)
            self._file.flush()
        except OSError as e:
            raise RunDirError(
                f"cannot append to {str(self.path)!r} ({_reason(e)})"
            ) from e

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # a failed flush was reported by write()


def read_rows(run_dir: Path) -> list[Row]:
    """Rows of ``metrics.csv`` with numbers parsed (ints stay ints).

    A missing file gives no rows; reading stops before the first damaged line
    (a line cut by a kill or a full disk, NUL bytes, a wrong number of fields),
    so the result is the file's consistent beginning.
    """
    path = Path(run_dir) / METRICS_FILE
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunDirError(f"cannot read {str(path)!r} ({_reason(e)})") from e
    lines = text.split("\n")
    header = next(csv.reader(lines[:1]), [])
    if "iteration" not in header:
        return []
    rows = []
    for line in lines[1:-1]:  # the last piece has no newline: cut or empty
        fields = next(csv.reader([line]), [])
        if "\0" in line or len(fields) != len(header):
            break
        try:
            rows.append({k: _number(v) for k, v in zip(header, fields, strict=True)})
        except ValueError:
            break
    return rows


def rows_up_to(run_dir: Path, iteration: int, num_runs: int) -> tuple[list[Row], str]:
    """The rows of ``metrics.csv`` up to ``iteration`` (a checkpoint's), and a
    note (empty when complete) on rows lost to a damaged or missing file."""
    rows = []
    for row in read_rows(run_dir):
        if row["iteration"] > iteration:
            break
        rows.append(row)
    have = rows[-1]["iteration"] if rows else 0
    if len(rows) == iteration * num_runs:
        return rows, ""
    return rows, (
        f"note: {METRICS_FILE} held complete rows up to iteration {have} only; "
        f"iterations {have + 1} to {iteration} are missing from it (the "
        "checkpoint and training are unaffected)"
    )


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)
