"""What a search is and where it lies: :class:`SearchSettings` (the base
config, the space, the seeds per trial and the statistic, which define the
objective; the trials, batch and pruning), stored in the run directory's
``search.json``, and the names of the run directory's files.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ppo_jax.config.files import dump_config
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.run import rundir
from ppo_jax.run.search.objectives import get_statistic
from ppo_jax.run.search.space import (
    SearchSpace,
    check_space,
    space_from_dict,
    space_to_dict,
)

# The run directory's files.
STUDY_FILE = "study.db"
SETTINGS_FILE = "search.json"
BASE_CONFIG_FILE = "base_config.json"
SPACE_FILE = "space.json"
TRIALS_CSV = "trials.csv"
TRIALS_TABLE = "trials.md"
BEST_CONFIG_FILE = "best_config.toml"
PLOT_FILE = "search.png"
STUDY_NAME = "ppo_jax"
FORMAT_VERSION = 1  # of search.json


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What a search is: the base config, the space, the seeds per trial and
    the statistic (these define the objective), the number of trials it
    finishes, how many train at once and whether it prunes."""

    config: PPOConfig
    space: SearchSpace
    trials: int
    batch: int = 4
    num_seeds: int = 1
    statistic: str = "final_return"
    prune: bool = False

    def validate(self) -> SearchSettings:
        """Check everything (the config, the space, the numbers); raises
        ConfigError with one sentence."""
        self.config.validate()
        for name in ("trials", "batch", "num_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, value, "an integer >= 1")
        if self.config.seed + self.num_seeds - 1 > 2**32 - 1:
            raise ConfigError(
                "num_seeds", self.num_seeds, "a number whose seeds seed, seed + 1, "
                "... fit in uint32",
            )  # fmt: skip
        get_statistic(self.statistic)
        check_space(self.space, self.config)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "study_name": STUDY_NAME,
            "statistic": self.statistic,
            "num_seeds": self.num_seeds,
            "trials": self.trials,
            "batch": self.batch,
            "prune": self.prune,
            "space": space_to_dict(self.space),
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSettings:
        if not isinstance(d, dict) or d.get("format") != FORMAT_VERSION:
            raise ValueError(f"not a search file of format {FORMAT_VERSION}")
        return cls(
            config=PPOConfig.from_dict(d["config"]),
            space=space_from_dict(d["space"]),
            trials=d["trials"],
            batch=d["batch"],
            num_seeds=d["num_seeds"],
            statistic=d["statistic"],
            prune=d["prune"],
        )

    def mismatch(self, other: SearchSettings) -> str | None:
        """The first difference in what defines the objective (config, space,
        seeds, statistic), as ``"lr=0.001, not 0.0003"``; None if none."""
        mine, theirs = self.config.to_dict(), other.config.to_dict()
        for k, v in mine.items():
            if theirs[k] != v:
                return f"base config {k}={v!r}, not {theirs[k]!r}"
        if space_to_dict(self.space) != space_to_dict(other.space):
            own = " ".join(p.text() for p in self.space)
            return f"space {own}, not {' '.join(p.text() for p in other.space)}"
        for name in ("num_seeds", "statistic"):
            if getattr(self, name) != getattr(other, name):
                return f"{name}={getattr(self, name)!r}, not {getattr(other, name)!r}"
        return None


def load_settings(run_dir: Path) -> SearchSettings:
    """The settings of the search in ``run_dir`` (RunDirError, one sentence,
    if there is none or its file is damaged)."""
    path = Path(run_dir) / SETTINGS_FILE
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise rundir.RunDirError(f"{str(run_dir)!r} is not a directory")
    if not Path(run_dir).exists():
        raise rundir.RunDirError(f"search directory {str(run_dir)!r} does not exist")
    if not path.exists():
        raise rundir.RunDirError(
            f"{str(run_dir)!r} holds no search (no {SETTINGS_FILE}): start one "
            "with --run-dir instead of --resume"
        )
    try:
        return SearchSettings.from_dict(rundir.read_json_file(path)).validate()
    except (ValueError, TypeError, KeyError, OSError) as e:
        reason = " ".join(str(e).split()).rstrip(".")
        raise rundir.RunDirError(
            f"{str(path)!r} is not a valid search file ({reason})"
        ) from e


def save_settings(settings: SearchSettings, run_dir: Path) -> None:
    """Write ``search.json`` (with this start's trials, batch and prune), and
    in a directory that has none yet, first the base config and the space as
    files the commands read (``base_config.json``, ``space.json``)."""
    if not (run_dir / SETTINGS_FILE).exists():
        # The base config and space as files the commands read.
        rundir.atomic_write_bytes(
            run_dir / BASE_CONFIG_FILE,
            dump_config(settings.config, "json").encode(),
        )
        rundir.atomic_write_bytes(
            run_dir / SPACE_FILE,
            (json.dumps(space_to_dict(settings.space), indent=2) + "\n").encode(),
        )
    rundir.atomic_write_bytes(
        run_dir / SETTINGS_FILE,
        (json.dumps(settings.to_dict(), indent=2) + "\n").encode(),
    )


def default_run_dir(env_name: str) -> Path:
    """``runs/tune-ENV-DATE-TIME``."""
    label = env_name.replace("/", "-").replace(":", "-")
    return Path("runs") / f"tune-{label}-{datetime.now():%Y%m%d-%H%M%S}"
