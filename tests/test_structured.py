"""Structured observations (dicts of arrays read whole) and the network that
encodes each entry by its kind: the spec, learning through make_train and
the command line (with an action mask), normalization of float entries
only, and one-sentence refusals where a single array is needed."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import user_components as uc
from conftest import run_cli

from ppo_jax import (
    ConfigError,
    MaskedObservation,
    PPOConfig,
    build_pipeline,
    make_env,
    make_train,
)
from ppo_jax.algo.normalization import (
    RunningMeanStd,
    init_observation_stats,
    normalize_observation,
    update_observation_stats,
)
from ppo_jax.analysis.evaluation import load_policy, load_run
from ppo_jax.analysis.exporting import export_npz, export_onnx
from ppo_jax.networks.structured import StructuredEncoder, entry_kind
from ppo_jax.run.host_policy import RecurrentNumpyPolicy
from ppo_jax.run.rundir import read_rows

TESTS = Path(__file__).resolve().parent

GRID = PPOConfig(
    env_name="user_components:StructuredMatchEnv",
    network="structured",
    policy_std=None,
    num_envs=8,
    rollout_length=32,
    total_timesteps=8 * 32 * 25,
    update_epochs=4,
    num_minibatches=4,
    lr=3e-3,
    hidden_sizes=(32,),
    conv_channels=(8,),
    normalize_obs=True,
    save_freq=10,
)
GRID_ARGS = [
    "--network", "structured", "--policy-std", "none", "--num-envs", "8",
    "--rollout-length", "32", "--total-timesteps", str(GRID.total_timesteps),
    "--update-epochs", "4", "--num-minibatches", "4", "--lr", "3e-3",
    "--hidden-sizes", "32", "--conv-channels", "8", "--normalize-obs",
    "--save-freq", "10",
]  # fmt: skip


def test_dict_observations_read_whole_are_described_entry_by_entry():
    spec = make_env(GRID, env=uc.StructuredMatchEnv()).spec
    assert list(spec.obs_structure) == ["grid", "lit", "noise", "ticks"]
    grid = spec.obs_structure["grid"]
    assert grid.shape == (4, 4, 2) and grid.dtype == jnp.uint8
    assert spec.obs_structure["lit"].dtype == jnp.bool_
    assert spec.obs_shape == (4 * 4 * 2 + 2 + 3 + 1,)  # sizes only
    assert entry_kind((4, 4, 2), np.uint8) == "ids"
    assert entry_kind((4, 4), np.int32) == "ids"
    assert entry_kind((8, 8, 3), np.float32) == "grid"
    assert entry_kind((8, 8, 3), np.bool_) == "grid"
    assert entry_kind((5, 3), np.float32) == "flat"
    assert entry_kind((), np.int32) == "counts"
    assert entry_kind((2,), np.uint16) == "counts"
    assert entry_kind((2,), np.bool_) == "flat"


def test_integer_counts_enter_as_a_signed_log():
    # A counter in the thousands (Jumanji Snake's step_count) would swamp the
    # dense layers as a raw float: sign(x) * log(1 + |x|), against numpy.
    encoder = StructuredEncoder(
        ranks={"step": 0, "dir": 1},
        kinds={"step": "counts", "dir": "counts"},
        channels=(4,), kernel=3, activation="relu", ortho_init=True,
    )  # fmt: skip
    step = np.array([0, 4000, -7], np.int32)
    direction = np.array([[0, 3], [1, 2], [5, 255]], np.uint8)
    obs = {"step": jnp.asarray(step), "dir": jnp.asarray(direction)}
    encoded = encoder.apply(encoder.init(jax.random.key(0), obs), obs)
    want = np.concatenate(
        [
            np.log1p(direction.astype(float)),
            (np.sign(step) * np.log1p(np.abs(step)))[:, None],
        ],
        -1,
    )
    assert encoded.dtype == jnp.float32 and encoded.shape == (3, 3)
    np.testing.assert_allclose(encoded, want, rtol=1e-6)


def test_normalization_touches_float_entries_only():
    rng = np.random.default_rng(0)
    obs = MaskedObservation(
        {
            "grid": jnp.asarray(rng.integers(0, 9, (64, 4, 4, 2)), jnp.uint8),
            "noise": jnp.asarray(rng.normal(5.0, 3.0, (64, 3)), jnp.float32),
            "lit": jnp.asarray(rng.random((64, 2)) < 0.5),
        },
        jnp.asarray(rng.random((64, 4)) < 0.5),
    )
    stats = update_observation_stats(init_observation_stats(obs), obs)
    assert isinstance(stats.obs["noise"], RunningMeanStd)
    assert stats.obs["grid"] == () and stats.obs["lit"] == ()
    assert stats.action_mask == ()
    seen = normalize_observation(obs, stats)
    np.testing.assert_array_equal(seen.obs["grid"], obs.obs["grid"])
    np.testing.assert_array_equal(seen.obs["lit"], obs.obs["lit"])
    np.testing.assert_array_equal(seen.action_mask, obs.action_mask)
    np.testing.assert_allclose(np.mean(seen.obs["noise"], 0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.std(seen.obs["noise"], 0), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    "change, field, says",
    [
        ({"network": "mlp"}, "network", "structured for dict observations read whole"),
        ({"network": "cnn"}, "network", "structured for dict observations read whole"),
        ({"network": "gru"}, "network", "structured for dict observations read whole"),
        ({"hide_obs": (0,)}, "hide_obs", "not one flat array"),
        ({"critic_obs_key": "noise"}, "critic_obs_key", "none without obs_key"),
    ],
)
def test_what_needs_one_array_is_refused_in_one_sentence(change, field, says):
    with pytest.raises(ConfigError) as e:
        make_train(GRID.replace(**change), env=uc.StructuredMatchEnv())
    message = str(e.value)
    assert e.value.field == field and says in message, message
    assert "\n" not in message


def test_structured_network_refuses_array_observations():
    with pytest.raises(ConfigError, match="structured reads dict observations"):
        make_train(GRID.replace(env_name="CartPole-v1"))


def test_obs_key_still_picks_one_entry():
    config = GRID.replace(network="mlp", obs_key="noise", normalize_obs=False)
    spec = make_env(config, env=uc.StructuredMatchEnv()).spec
    assert spec.obs_structure is None and spec.obs_shape == (3,)


def test_masked_structured_env_from_the_cli(tmp_path, monkeypatch):
    run_dir = tmp_path / "structured"
    proc = run_cli(
        "--env", "user_components:MaskedStructuredMatchEnv", *GRID_ARGS,
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    returns = np.array([r["mean_return"] for r in read_rows(run_dir)])
    # Random legal play: 4 of 8; an illegal action: -1000.
    # (6 seeds at 25 iterations, make_train: 7.93-8.0 over the last 5.)
    assert (returns > 0).all() and returns[-5:].mean() > 7.0, returns
    monkeypatch.syspath_prepend(str(TESTS))
    # It read the card from the id grid: one embedding table for the grid's
    # ids, none for the float and bool entries.
    _, runner = load_run(run_dir)
    embedded = runner.agent.actor_params["params"]["encoder"]
    assert embedded["embed_grid"]["embedding"].shape == (256, 8)
    assert not any(k.startswith("embed_") and k != "embed_grid" for k in embedded)
    policy = load_policy(run_dir)
    env = uc.MaskedStructuredMatchEnv()
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(5), 16), env.default_params
    )
    obs = jax.tree.map(np.asarray, obs)
    np.testing.assert_array_equal(policy(obs), np.asarray(state.card))
    # Only the next card legal: the policy names it.
    nxt = (np.asarray(state.card) + 1) % 4
    only_next = obs._replace(action_mask=np.eye(4, dtype=bool)[nxt])
    np.testing.assert_array_equal(policy(only_next), nxt)
    # Exports: one ONNX input per entry (and the mask), npz per entry.
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(
        str(export_onnx(run_dir)), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    assert names == ["obs.grid", "obs.lit", "obs.noise", "obs.ticks", "action_mask"]
    feed = {f"obs.{k}": v.astype(np.float32) for k, v in obs.obs.items()}
    feed["action_mask"] = only_next.action_mask.astype(np.float32)
    np.testing.assert_array_equal(session.run(["action"], feed)[0], nxt)
    z = np.load(export_npz(run_dir))
    assert list(z["obs_keys"]) == ["grid", "lit", "noise", "ticks"]
    assert (
        tuple(z["obs_shape/grid"]) == (4, 4, 2) and str(z["obs_dtype/grid"]) == "uint8"
    )
    assert "obs_mean/noise" in z and "obs_mean/grid" not in z and "obs_mean" not in z


def test_structured_gru_learns_and_acts_on_dicts_with_masks():
    config = GRID.replace(
        network="structured-gru",
        env_name="user_components:MaskedStructuredMatchEnv",
        recurrent_size=16,
    )  # 25 iterations: 7.46-8.0 over the last 5 on 6 seeds
    env = uc.MaskedStructuredMatchEnv()
    runner, metrics = jax.jit(make_train(config, env=env))(jax.random.key(2))
    returns = np.asarray(metrics.mean_return)
    # Random legal play: 4 of 8; an illegal action: -1000.
    assert (returns > 0).all() and returns[-5:].mean() > 7.0, returns
    # The host policy carries the GRU's memory over a batch of dicts.
    policy = RecurrentNumpyPolicy(build_pipeline(config, env=env), runner)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(6), 16), env.default_params
    )
    action, memory = policy(jax.tree.map(np.asarray, obs))
    assert memory.shape == (16, 16)
    np.testing.assert_array_equal(action, np.asarray(state.card))
