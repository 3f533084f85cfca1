"""Network shapes, dtypes and PyTorch-style initialization."""

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax.networks import make_networks


def test_shapes_dtypes_and_torch_init_bounds():
    actor, critic = make_networks((64, 64), "relu", action_dim=2)
    obs = jnp.zeros((5, 3), jnp.float32)
    actor_params = actor.init(jax.random.key(0), obs)
    critic_params = critic.init(jax.random.key(1), obs)
    assert actor.apply(actor_params, obs).out.shape == (5, 2)
    assert critic.apply(critic_params, obs).shape == (5,)
    leaves = jax.tree.leaves(actor_params) + jax.tree.leaves(critic_params)
    assert all(x.dtype == jnp.float32 for x in leaves)
    # torch.nn.Linear: weights and biases uniform in +-1/sqrt(fan_in)
    layers = actor_params["params"]
    fan_ins = {"Dense_0": 3, "Dense_1": 64, "Dense_2": 64}
    for name, fan_in in fan_ins.items():
        bound = 1 / np.sqrt(fan_in)
        for leaf in (layers[name]["kernel"], layers[name]["bias"]):
            assert np.abs(leaf).max() <= bound
        assert np.abs(layers[name]["kernel"]).max() > 0.8 * bound  # not too small


def test_layer_sizes_follow_hidden_sizes():
    actor, _ = make_networks((8, 16, 4), "tanh", action_dim=1)
    params = actor.init(jax.random.key(0), jnp.zeros((3,)))["params"]
    shapes = [params[f"Dense_{i}"]["kernel"].shape for i in range(4)]
    assert shapes == [(3, 8), (8, 16), (16, 4), (4, 1)]
