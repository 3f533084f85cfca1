"""Where a run's metrics go besides ``metrics.csv``: TensorBoard, Weights & Biases.

The CSV (:class:`ppo_jax.run.rundir.MetricsWriter`) is always written; the
loggers here are optional (``--logger tensorboard``, ``--logger wandb``, each
an optional extra). They are fed from the host loop after each compiled chunk,
with the same rows as the CSV: nothing runs inside the compiled function.

A run directory with several runs (seeds x sweep settings) gets one series per
run, named by its seed and swept values (``seed0``, ``seed1-lr0.001``, ...):

- TensorBoard: one event directory per run, ``RUN_DIR/tensorboard/<name>/``,
  every metric as a scalar against environment steps (of that run), and the
  config, seed and setting as hyperparameters (the HPARAMS tab);
- wandb: one wandb run per run, grouped by the run directory's name, with the
  config, seed and setting as its config and every metric logged against
  environment steps. Offline (files under ``RUN_DIR/wandb/``, upload later with
  ``wandb sync``) unless you configured wandb: ``WANDB_MODE`` set, or an API
  key in ``WANDB_API_KEY`` or ``~/.netrc``.

Which loggers a run uses, and its wandb run ids, are saved in
``RUN_DIR/loggers.json``, so that ``--resume`` continues the same series.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import netrc
import os
import secrets
import socket
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.runspec import RunSpec
from ppo_jax.config.schema import ConfigError
from ppo_jax.run.rundir import (
    LOGGERS_FILE,
    TENSORBOARD_DIR,
    WANDB_DIR,
    Row,
    RunDirError,
    atomic_write_bytes,
    read_json_file,
)

LOGGERS = ("csv", "tensorboard", "wandb")
# logger -> (module it needs, the extra that installs it)
_NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}
# Columns that label a row rather than measure something.
_LABELS = ("run", "seed", "iteration", "timesteps")


def _scalars(row: Row, skipped: tuple[str, ...]) -> dict[str, int | float]:
    """The numbers of a metrics row to log, less ``skipped`` and NaN values
    (an iteration without an evaluation or without an ended episode: a gap,
    not a point)."""
    return {
        key: value
        for key, value in row.items()
        if key not in skipped
        and isinstance(value, (int, float))
        and not (isinstance(value, float) and math.isnan(value))
    }


WandbMode = Literal["online", "offline", "disabled", "shared"]
L = TypeVar("L")
WANDB_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled", "shared")


@dataclasses.dataclass(frozen=True)
class LoggerSpec:
    """The loggers of a run and their settings (saved in ``loggers.json``)."""

    loggers: tuple[str, ...] = ()  # besides csv, which is always on
    wandb_project: str = "ppo_jax"
    wandb_name: str | None = None  # default: the run directory's name
    wandb_ids: tuple[str, ...] = ()  # one per run, set when the runs start

    def validate(self) -> LoggerSpec:
        """Refuse unknown loggers and missing extras (before anything compiles)."""
        for name in self.loggers:
            if name not in LOGGERS:
                raise ConfigError("logger", name, "one of " + ", ".join(LOGGERS))
            if name in _NEEDS:
                module, extra = _NEEDS[name]
                if importlib.util.find_spec(module) is None:
                    raise ConfigError(
                        "logger",
                        name,
                        f"a logger whose package is installed: {module} is missing "
                        f"(pip install -e '.[{extra}]')",
                    )
        if "wandb" in self.loggers:
            wandb_mode()  # a bad WANDB_MODE is refused now, not after compiling
        if not self.wandb_project.strip():
            raise ConfigError("wandb_project", self.wandb_project, "a non-empty name")
        if self.wandb_name is not None and not self.wandb_name.strip():
            raise ConfigError(
                "wandb_name",
                self.wandb_name,
                "a non-empty name (or none: the run directory's name)",
            )
        return dataclasses.replace(
            self, loggers=tuple(dict.fromkeys(n for n in self.loggers if n != "csv"))
        )


def check_loggers_can_start(run_dir: Path, spec: LoggerSpec) -> None:
    """Refuse, before anything compiles or is written, a logger that would fail
    once the run is under way: its folder in ``run_dir`` taken by something
    that is not a folder (a traceback when it starts), or an online wandb
    whose server does not answer (:func:`check_wandb_server`)."""
    folders = {"tensorboard": TENSORBOARD_DIR, "wandb": WANDB_DIR}
    for name in spec.loggers:
        path = Path(run_dir) / folders[name]
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            raise RunDirError(
                f"{str(path)!r} is not a folder, and the {name} logger writes "
                "there: move it away or choose another --run-dir"
            )
    if "wandb" in spec.loggers and wandb_mode() == "online":
        check_wandb_server()


def save_logger_spec(run_dir: Path, spec: LoggerSpec) -> None:
    data = dataclasses.asdict(spec)
    atomic_write_bytes(Path(run_dir) / LOGGERS_FILE, json.dumps(data).encode())


def load_logger_spec(run_dir: Path) -> LoggerSpec:
    """The run's loggers; none when the run has no ``loggers.json``."""
    path = Path(run_dir) / LOGGERS_FILE
    if not path.exists():
        return LoggerSpec()
    try:
        data = read_json_file(path)
        spec = LoggerSpec(
            loggers=tuple(data["loggers"]),
            wandb_project=str(data["wandb_project"]),
            wandb_name=data["wandb_name"],
            wandb_ids=tuple(data["wandb_ids"]),
        )
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise RunDirError(f"{str(path)!r} is not a valid loggers file ({e})") from e
    return spec.validate()


def run_names(labels: list[dict[str, Any]]) -> list[str]:
    """Per run: ``seed0`` or ``seed0-lr0.001-gamma0.9`` (seed, then swept values)."""
    return [
        "-".join(
            f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in lab.items()
        )
        for lab in labels
    ]


def hparam_dict(config: PPOConfig, label: dict[str, Any]) -> dict[str, Any]:
    """The config with one run's seed and swept values, as flat scalars."""
    values = {**config.to_dict(), **label}
    return {
        k: v if isinstance(v, (bool, int, float, str)) else str(v)
        for k, v in values.items()
    }


class Logger(Protocol):
    def write(self, rows: list[Row]) -> None:
        """Log one chunk's rows (one per iteration and run, as in the CSV)."""

    def video(self, run: int, gif: Path, tag: str, step: int) -> None:
        """Log an animated GIF file of run ``run`` at env step ``step``."""

    def close(self) -> None: ...


class TensorBoardLogger:
    """One tensorboardX event directory per run (see the module docstring)."""

    def __init__(self, run_dir: Path, spec: RunSpec, resume: bool):
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        labels = spec.run_labels()
        self.writers = []
        for name, label in zip(run_names(labels), labels, strict=True):
            writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR / name))
            if not resume:
                # The hyperparameters of this run, shown in the HPARAMS tab.
                for summary in hparams(
                    hparam_dict(spec.config, label), {"mean_return": math.nan}
                ):
                    writer._get_file_writer().add_summary(summary)
            self.writers.append(writer)

    def write(self, rows: list[Row]) -> None:
        for row in rows:
            writer = self.writers[int(row["run"])]
            step = int(row["timesteps"])
            for key, value in _scalars(row, _LABELS).items():
                writer.add_scalar(key, value, global_step=step)
        for writer in self.writers:
            writer.flush()

    def video(self, run: int, gif: Path, tag: str, step: int) -> None:
        """The GIF as TensorBoard shows animations: an image summary whose
        encoded image is the GIF (what tensorboardX's ``add_video`` writes,
        without needing moviepy to encode it)."""
        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        data = Path(gif).read_bytes()
        with Image.open(gif) as image:
            width, height = image.size
        picture = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=data
        )
        summary = Summary(value=[Summary.Value(tag=tag, image=picture)])
        writer = self.writers[run]
        writer._get_file_writer().add_summary(summary, global_step=step)
        writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def wandb_mode() -> WandbMode:
    """``WANDB_MODE`` if set; online with an API key configured; else offline."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode:
        if mode not in WANDB_MODES:
            raise ConfigError("WANDB_MODE", mode, "one of " + ", ".join(WANDB_MODES))
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


WANDB_SERVER_TIMEOUT_S = 10.0  # how long an online wandb may take to answer


def check_wandb_server(timeout_s: float = WANDB_SERVER_TIMEOUT_S) -> None:
    """Refuse an online wandb whose server does not answer (a cluster node
    with an API key but no network) in one sentence, within ``timeout_s``
    seconds, instead of wandb's own minutes of retries and traceback."""
    url = urllib.parse.urlsplit(
        os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    )
    host = url.hostname or "api.wandb.ai"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(
            "logger",
            "wandb",
            f"a wandb that can log: it is set to go online (an API key is "
            f"configured) but its server {host}:{port} did not answer within "
            f"{timeout_s:g} s ({reason}); set WANDB_MODE=offline to log to the "
            "run directory and wandb sync later",
        ) from e


class WandbLogger:
    """One wandb run per run, grouped by the run directory (module docstring)."""

    def __init__(self, run_dir: Path, spec: RunSpec, logger_spec: LoggerSpec):
        import wandb

        labels = spec.run_labels()
        names = run_names(labels)
        base = logger_spec.wandb_name or Path(run_dir).resolve().name
        ids = logger_spec.wandb_ids or tuple(secrets.token_hex(4) for _ in labels)
        self.ids = ids
        (Path(run_dir) / WANDB_DIR).mkdir(exist_ok=True)
        self.runs = [
            wandb.init(
                project=logger_spec.wandb_project,
                name=base if len(labels) == 1 else f"{base}/{name}",
                group=base,
                id=run_id,
                resume="allow",
                dir=str(run_dir),  # wandb writes under RUN_DIR/wandb/
                mode=wandb_mode(),
                config=hparam_dict(spec.config, label),
                reinit="create_new",
                settings=wandb.Settings(silent=True),
            )
            for name, label, run_id in zip(names, labels, ids, strict=True)
        ]

    def write(self, rows: list[Row]) -> None:
        for row in rows:
            values = _scalars(row, ("run", "seed"))
            self.runs[int(row["run"])].log(values, step=int(row["timesteps"]))

    def video(self, run: int, gif: Path, tag: str, step: int) -> None:
        import wandb

        self.runs[run].log({tag: wandb.Video(str(gif), format="gif")}, step=step)

    def close(self) -> None:
        for run in self.runs:
            run.finish()


def open_loggers(
    run_dir: Path, spec: RunSpec, logger_spec: LoggerSpec, resume: bool
) -> tuple[list[Logger], LoggerSpec]:
    """Start the loggers of ``logger_spec``; returns them and the spec to save
    (with the wandb run ids, so that a resumed run continues them).

    Best effort: what could be checked was checked before compiling
    (:meth:`LoggerSpec.validate`, :func:`check_loggers_can_start`); a logger that
    still fails to start is left out with a note on stderr, and the run goes
    on with metrics.csv (which has every row)."""
    loggers: list[Logger] = []
    if "tensorboard" in logger_spec.loggers:
        tensorboard = _started(
            "tensorboard", lambda: TensorBoardLogger(run_dir, spec, resume)
        )
        loggers += [tensorboard] if tensorboard is not None else []
    if "wandb" in logger_spec.loggers:
        wandb_logger = _started(
            "wandb", lambda: WandbLogger(run_dir, spec, logger_spec)
        )
        if wandb_logger is not None:
            logger_spec = dataclasses.replace(logger_spec, wandb_ids=wandb_logger.ids)
            loggers.append(wandb_logger)
    return loggers, logger_spec


def _started(name: str, start: Callable[[], L]) -> L | None:
    try:
        return start()
    except Exception as e:  # the logger's library: any error becomes a note
        message = " ".join(str(e).split()) or "no message"
        print(
            f"note: the {name} logger could not start ({type(e).__name__}: "
            f"{message}); training goes on, metrics.csv has every row",
            file=sys.stderr,
        )
        return None
