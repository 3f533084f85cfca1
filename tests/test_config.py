"""Presets: the tutorial preset is the tutorial's Pendulum settings
(ppo_jax/config/README.md, "The tutorial preset"), every option off."""

import pytest

from ppo_jax import PRESETS, ConfigError, PPOConfig
from ppo_jax.config.ppo_config import BOOL_FIELDS
from ppo_jax.envs import make_env


def test_tutorial_preset_is_the_tutorials_pendulum_column():
    c = PRESETS["tutorial"]
    assert c == PPOConfig()  # the default
    assert (c.gamma, c.lr, c.clip_eps) == (0.99, 3e-4, 0.2)
    assert (c.update_epochs, c.num_minibatches) == (10, 1)  # whole batch
    assert c.hidden_sizes == (64, 64) and c.activation == "relu"
    assert c.policy_std == "fixed" and c.action_variance == 0.5
    assert c.batch_size == 2200 == 11 * 200  # 11 whole episodes
    assert make_env(c).params.max_steps_in_episode == 200
    # Everything beyond the tutorial is off.
    assert (c.advantage, c.optimizer) == ("rtg", "separate")
    assert c.max_grad_norm is None and c.target_kl is None
    assert (c.ent_coef, c.vf_coef, c.adam_eps) == (0.0, 1.0, 1e-8)
    assert c.eval_every == 0 and c.eval_actions == "mode"
    assert len(BOOL_FIELDS) == 8  # anneal_lr, clip_value, ... (none forgotten)
    for flag in BOOL_FIELDS:
        assert getattr(c, flag) is False, flag


def test_env_overrides_apply_before_user_overrides():
    c = PPOConfig.from_preset("tuned", env_name="CartPole-v1", lr=1e-3)
    assert c.policy_std is None and c.gamma == 0.98  # the env's override
    assert c.lr == 1e-3  # the user's wins
    assert PPOConfig.from_preset("tuned").policy_std == "learned"


def test_unknown_preset_and_round_trip():
    with pytest.raises(ConfigError, match="preset='fast'"):
        PPOConfig.from_preset("fast")
    c = PRESETS["tuned"]
    assert PPOConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="not a PPOConfig field"):
        PPOConfig.from_dict({"learning_rate": 1.0})


def test_family_prefix_names_the_same_env_and_preset_overrides():
    plain = PPOConfig.from_preset("tuned", env_name="CartPole-v1")
    prefixed = PPOConfig.from_preset("tuned", env_name="gymnax/CartPole-v1")
    assert prefixed == plain.replace(env_name="gymnax/CartPole-v1")
    assert make_env(prefixed).spec == make_env(plain).spec
    with pytest.raises(ConfigError, match="FAMILY/NAME with a family of gymnax"):
        make_env(PPOConfig(env_name="mujoco/Ant-v5"))
    with pytest.raises(ConfigError, match="did you mean CartPole-v1"):
        make_env(PPOConfig(env_name="gymnax/CartPole-v2"))


def test_a_family_table_applies_to_every_task_of_its_family():
    from ppo_jax.config.presets import ENV_OVERRIDES, FAMILY_OVERRIDES

    grid = FAMILY_OVERRIDES[("tuned", "navix")]
    for name in ("navix/Navix-Empty-5x5-v0", "navix/Navix-DoorKey-8x8-v0"):
        config = PPOConfig.from_preset("tuned", env_name=name, seed=3)
        assert all(getattr(config, k) == v for k, v in grid.items()), name
        assert config.seed == 3  # the user's overrides come last
    # A task's own table wins over its family's; no family, no table.
    assert ("tuned", "CartPole-v1") in ENV_OVERRIDES
    cartpole = PPOConfig.from_preset("tuned", env_name="gymnax/CartPole-v1")
    assert (
        cartpole.rollout_length
        == ENV_OVERRIDES[("tuned", "CartPole-v1")]["rollout_length"]
    )
    assert PPOConfig.from_preset("tuned", env_name="my_module:Env") == PRESETS[
        "tuned"
    ].replace(env_name="my_module:Env")
