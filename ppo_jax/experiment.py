"""Many runs in one compile: seeds x sweep settings, sharded over local devices.

A :class:`RunSpec` is a config plus ``num_seeds`` and a ``sweep`` of traceable
hyperparameters. Its ``R = settings x seeds`` runs are vmapped together (a
leading ``[R]`` axis on every leaf of the runner state and the metrics) and the
run axis is sharded across all local devices with ``jax.sharding``; a single
run instead shards its environment axis. Run ``r`` uses setting
``r // num_seeds`` and PRNG key ``jax.random.key(config.seed + r % num_seeds)``,
so each run equals ``make_train(config with that setting)`` called alone with
that key (up to float rounding).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppo_jax.checkpoint import CheckpointError, atomic_write_bytes
from ppo_jax.config import TRACEABLE_FIELDS, ConfigError, Hyperparams, PPOConfig
from ppo_jax.train import Pipeline, make_chunk

RUN_FILE = "run.json"


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
        if not isinstance(self.num_seeds, int) or self.num_seeds < 1:
            raise ConfigError("num_seeds", self.num_seeds, "an integer >= 1")
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


def save_run_spec(run_dir: Path, spec: RunSpec) -> None:
    text = json.dumps(spec.to_dict(), indent=2) + "\n"
    atomic_write_bytes(Path(run_dir) / RUN_FILE, text.encode())


def load_run_spec(run_dir: Path, config: PPOConfig) -> RunSpec:
    path = Path(run_dir) / RUN_FILE
    if not path.exists():  # a single run (or one written before run.json)
        return RunSpec(config)
    try:
        return RunSpec.from_dict(config, json.loads(path.read_text()))
    except (ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{str(path)!r} is not a valid run file ({e})") from e


class Experiment:
    """The compiled functions of a RunSpec and how their data is placed."""

    def __init__(self, spec: RunSpec, pipeline: Pipeline, chunk_iterations: int):
        self.spec = spec
        self.pipeline = pipeline
        init, chunk = pipeline.init, make_chunk(pipeline, chunk_iterations)
        if spec.batched:
            init, chunk = jax.vmap(init), jax.vmap(chunk)
        self.keys = spec.keys()
        self.hparams = spec.hyperparams()
        self.runner_shape = jax.eval_shape(init, self.keys, self.hparams)
        self.mesh, self.note = self._mesh()
        runner_sharding = self._runner_sharding()
        hp_sharding = self._along_runs(self.hparams)
        key_sharding = self._along_runs(self.keys)
        self._init = jax.jit(
            init,
            in_shardings=(key_sharding, hp_sharding),
            out_shardings=runner_sharding,
        )
        self._chunk = jax.jit(
            chunk,
            in_shardings=(runner_sharding, hp_sharding),
            out_shardings=(runner_sharding, None),
        )
        self.runner_sharding = runner_sharding

    # ---------------------------------------------------------------- placement
    def _mesh(self):
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

    def _along_runs(self, tree):
        """Batched: split the leading run axis; single run: replicate."""
        if self.mesh is None:
            return None
        spec = PartitionSpec("devices") if self.spec.batched else PartitionSpec()
        return jax.tree.map(lambda _: NamedSharding(self.mesh, spec), tree)

    def _runner_sharding(self):
        if self.mesh is None or self.spec.batched:
            return self._along_runs(self.runner_shape)
        # A single run: split the environment axis of the per-env leaves; the
        # parameters, optimizer state, statistics and key are replicated.
        replicated = NamedSharding(self.mesh, PartitionSpec())
        per_env = NamedSharding(self.mesh, PartitionSpec("devices"))
        envs = self.runner_shape.envs
        env_sharding = jax.tree.map(
            lambda _: per_env,
            envs.replace(obs_stats=None, return_stats=None),
        ).replace(
            obs_stats=jax.tree.map(lambda _: replicated, envs.obs_stats),
            return_stats=jax.tree.map(lambda _: replicated, envs.return_stats),
        )
        sharding = jax.tree.map(lambda _: replicated, self.runner_shape)
        return sharding.replace(envs=env_sharding)

    # ------------------------------------------------------------------ compile
    def compile(self):
        """AOT-compile init and chunk; returns ``(init, run_chunk)``."""
        init = self._init.lower(self.keys, self.hparams).compile()
        chunk = self._chunk.lower(self.runner_shape, self.hparams).compile()
        return init, chunk

    def place(self, runner):
        """Put a (restored, host) runner state where the compiled chunk wants it."""
        if self.runner_sharding is None:
            return jax.device_put(runner)
        return jax.device_put(runner, self.runner_sharding)


def run_axis(tree, batched: bool):
    """Host metrics/runner with a leading [R] axis, adding one for a single run."""
    if batched:
        return tree
    return jax.tree.map(lambda x: np.asarray(x)[None], tree)
