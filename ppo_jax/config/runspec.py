"""What one command trains: a config x settings of a sweep x seeds.

Run ``r`` of a :class:`RunSpec` uses setting ``r // num_seeds`` and PRNG key
``jax.random.key(config.seed + r % num_seeds)``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp

from ppo_jax.config.ppo_config import (
    TRACEABLE_FIELDS,
    ConfigError,
    Hyperparams,
    PPOConfig,
)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What one command trains: ``config`` x ``sweep`` settings x seeds."""

    config: PPOConfig
    num_seeds: int = 1
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()  # ((field, values), ...)

    @property
    def settings(self) -> list[dict[str, float]]:
        """Every combination of the swept values (one empty dict if no sweep)."""
        names = [name for name, _ in self.sweep]
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(v for _, v in self.sweep))
        ]

    @property
    def num_runs(self) -> int:
        return len(self.settings) * self.num_seeds

    @property
    def batched(self) -> bool:
        """True when runs are vmapped (a leading [R] axis everywhere)."""
        return self.num_runs > 1

    def run_labels(self) -> list[dict[str, Any]]:
        """Per run: its seed and swept values, in run order."""
        return [
            {"seed": self.config.seed + s, **setting}
            for setting in self.settings
            for s in range(self.num_seeds)
        ]

    def validate(self) -> RunSpec:
        self.config.validate()
        max_seeds = 2**32 - self.config.seed  # seeds are uint32
        if not isinstance(self.num_seeds, int) or not 1 <= self.num_seeds <= max_seeds:
            raise ConfigError(
                "num_seeds",
                self.num_seeds,
                f"an integer >= 1 and <= {max_seeds} (seed + num_seeds - 1 must "
                "fit in uint32)",
            )
        for name, values in self.sweep:
            if name not in TRACEABLE_FIELDS:
                raise ConfigError(
                    "sweep",
                    name,
                    "a hyperparameter that does not change shapes: "
                    + ", ".join(TRACEABLE_FIELDS),
                )
            if not values:
                raise ConfigError("sweep", name, "at least one value")
            for value in values:
                self.config.replace(**{name: value}).validate()
        if len({name for name, _ in self.sweep}) != len(self.sweep):
            raise ConfigError("sweep", self.sweep, "each field swept once")
        return self

    def hyperparams(self) -> Hyperparams:
        """``[R]`` leaves when batched, scalars for a single run."""
        per_run = [
            self.config.replace(**setting).hyperparams()
            for setting in self.settings
            for _ in range(self.num_seeds)
        ]
        if not self.batched:
            return per_run[0]
        return jax.tree.map(lambda *x: jnp.stack(x), *per_run)

    def keys(self) -> jax.Array:
        seeds = [label["seed"] for label in self.run_labels()]
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        return keys if self.batched else keys[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_seeds": self.num_seeds,
            "sweep": {name: list(values) for name, values in self.sweep},
        }

    @classmethod
    def from_dict(cls, config: PPOConfig, d: dict[str, Any]) -> RunSpec:
        sweep = tuple((k, tuple(v)) for k, v in d.get("sweep", {}).items())
        return cls(config, int(d.get("num_seeds", 1)), sweep)


def parse_sweep(items: list[str] | None) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``["lr=1e-4,3e-4", "gamma=0.9,0.99"]`` -> ``(("lr", (1e-4, 3e-4)), ...)``."""
    sweep = []
    for item in items or ():
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        try:
            parsed = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            parsed = ()
        if not sep or not parsed:
            raise ConfigError(
                "sweep", item, "FIELD=V1,V2,... with numbers, e.g. lr=1e-4,3e-4"
            )
        sweep.append((name, parsed))
    return tuple(sweep)
