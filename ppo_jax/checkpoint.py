"""Checkpoints: the whole runner state plus the config, written atomically.

A run directory holds ``config.json`` and ``checkpoint.msgpack``. The checkpoint
is a msgpack file (flax serialization) of::

    {"format": 1, "env_name": str, "iteration": int, "config": {...},
     "runner": RunnerState as a state dict (PRNG key stored as its key data)}

It is written to a temporary file in the same directory and renamed over the
old one, so a kill mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from ppo_jax.config import PPOConfig

CHECKPOINT_FILE = "checkpoint.msgpack"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A run directory or checkpoint cannot be used; the message says why."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_config(run_dir: Path, config: PPOConfig) -> None:
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    atomic_write_bytes(Path(run_dir) / CONFIG_FILE, text.encode())


def load_config(run_dir: Path) -> PPOConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: not a ppo_jax run directory")
    try:
        return PPOConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a valid ppo_jax config ({e})"
        ) from e


def save_checkpoint(run_dir: Path, config: PPOConfig, runner) -> Path:
    """Write ``runner`` (a RunnerState, on host or device) atomically."""
    runner = jax.device_get(runner.replace(key=jax.random.key_data(runner.key)))
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


def load_checkpoint(run_dir: Path, template):
    """Restore a RunnerState shaped like ``template`` from ``run_dir``.

    ``template`` is any RunnerState of the same config (for instance
    ``jax.eval_shape(pipeline.init, key, hparams)``); returns ``(runner,
    checkpoint_config)`` with numpy leaves and a typed PRNG key.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing: the run saved no checkpoint")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        saved_config = PPOConfig.from_dict(payload["config"])
        key_template = jax.eval_shape(jax.random.key_data, template.key)
        runner = serialization.from_state_dict(
            template.replace(key=key_template), payload["runner"]
        )
    except Exception as e:  # msgpack, structure or shape errors alike
        raise CheckpointError(
            f"{str(path)!r} is unreadable or does not match this config ({e})"
        ) from e
    _check_shapes(template.replace(key=key_template), runner, path)
    return runner.replace(key=jax.random.wrap_key_data(runner.key)), saved_config


def _check_shapes(template, restored, path) -> None:
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
