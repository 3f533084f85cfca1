"""Checkpoint round trip and the errors for bad files."""

import jax
import numpy as np
import pytest
from flax import serialization

from ppo_jax import CheckpointError, RunSpec, build_pipeline
from ppo_jax.run.experiment import runner_template
from ppo_jax.run.rundir import CHECKPOINT_FILE, load_checkpoint, save_checkpoint


def template_of(config):
    return runner_template(build_pipeline(config), RunSpec(config))


def test_round_trip_restores_every_leaf(tmp_path, tiny_config, tiny_run):
    runner, _ = tiny_run
    save_checkpoint(tmp_path, tiny_config, runner)
    assert not list(tmp_path.glob("*.tmp"))  # written by rename
    restored = load_checkpoint(tmp_path, template_of(tiny_config), tiny_config)
    assert int(restored.iteration) == 3
    np.testing.assert_array_equal(
        jax.random.key_data(restored.key), jax.random.key_data(runner.key)
    )
    for a, b in zip(
        jax.tree.leaves(restored.replace(key=0)),
        jax.tree.leaves(runner.replace(key=0)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_config, tiny_run):
    save_checkpoint(tmp_path, tiny_config, tiny_run[0])
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path, template_of(tiny_config), tiny_config)


def test_checkpoint_of_other_architecture_is_refused(tmp_path, tiny_config, tiny_run):
    save_checkpoint(tmp_path, tiny_config, tiny_run[0])
    wider = tiny_config.replace(hidden_sizes=(32, 16))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path, template_of(wider), wider)


def test_checkpoint_of_another_config_is_refused(tmp_path, tiny_config, tiny_run):
    # Same shapes, another setting: only the saved config tells them apart.
    save_checkpoint(tmp_path, tiny_config, tiny_run[0])
    other = tiny_config.replace(gamma=0.5)
    with pytest.raises(CheckpointError, match="gamma=0.99 but config.json says"):
        load_checkpoint(tmp_path, template_of(other), other)


def test_checkpoint_of_another_format_is_refused(tmp_path, tiny_config, tiny_run):
    path = save_checkpoint(tmp_path, tiny_config, tiny_run[0])
    payload = serialization.msgpack_restore(path.read_bytes())
    payload["format"] = 99
    path.write_bytes(serialization.msgpack_serialize(payload))
    with pytest.raises(CheckpointError, match="has checkpoint format 99; this"):
        load_checkpoint(tmp_path, template_of(tiny_config), tiny_config)


def test_missing_checkpoint(tmp_path, tiny_config):
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path, template_of(tiny_config), tiny_config)


def test_checkpoint_from_before_networks_had_memory_loads(
    tmp_path, tiny_config, tiny_run
):
    """Checkpoints written before ``EnvBatch.memory`` existed (feedforward
    runs) resume: their memory is the empty one."""
    save_checkpoint(tmp_path, tiny_config, tiny_run[0])
    path = tmp_path / CHECKPOINT_FILE
    payload = serialization.msgpack_restore(path.read_bytes())
    assert payload["runner"]["envs"].pop("memory") == {"actor": {}, "critic": {}}
    path.write_bytes(serialization.msgpack_serialize(payload))
    restored = load_checkpoint(tmp_path, template_of(tiny_config), tiny_config)
    assert restored.envs.memory.actor == () and int(restored.iteration) == 3
