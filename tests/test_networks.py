"""Network shapes, dtypes and PyTorch-style initialization; the CNN torso."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_spec

from ppo_jax import PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.networks import make_networks
from ppo_jax.networks.cnn import PatchConv
from ppo_jax.networks.cpu_kernels import dense_dot_general, matmul
from ppo_jax.networks.mlp import make_mlp_networks


def test_shapes_dtypes_and_torch_init_bounds():
    config = PPOConfig(hidden_sizes=(64, 64), activation="relu")
    nets = make_mlp_networks(make_spec(action_dim=2), config)
    actor, critic, hp = nets.actor, nets.critic, config.hyperparams()
    obs = jnp.zeros((5, 3), jnp.float32)
    actor_params = actor.init(jax.random.key(0), hp)
    critic_params = critic.init(jax.random.key(1), hp)
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
    config = PPOConfig(hidden_sizes=(8, 16, 4), activation="tanh")
    actor = make_mlp_networks(make_spec(action_dim=1), config).actor
    params = actor.init(jax.random.key(0), config.hyperparams())["params"]
    shapes = [params[f"Dense_{i}"]["kernel"].shape for i in range(4)]
    assert shapes == [(3, 8), (8, 16), (16, 4), (4, 1)]


def test_grid_observations_keep_their_shape_and_are_flattened_by_the_mlp():
    # MinAtar-like [10, 10, 4] bool grids: the first layer sees 400 inputs, and
    # any number of leading batch axes passes through.
    spec = make_spec(obs_shape=(10, 10, 4), action_dim=3, discrete=True,
                     obs_dtype=np.bool_)  # fmt: skip
    config = PPOConfig(hidden_sizes=(8,), policy_std=None)
    nets = make_mlp_networks(spec, config)
    hp = config.hyperparams()
    actor_params = nets.actor.init(jax.random.key(0), hp)
    assert actor_params["params"]["Dense_0"]["kernel"].shape == (400, 8)
    grids = jnp.ones((2, 5, 10, 10, 4), jnp.bool_)
    assert nets.actor.apply(actor_params, grids).out.shape == (2, 5, 3)
    assert nets.actor.apply(actor_params, grids[0, 0]).out.shape == (3,)
    values = nets.critic.apply(nets.critic.init(jax.random.key(1), hp), grids)
    assert values.shape == (2, 5) and values.dtype == jnp.float32
    flat = grids.reshape(2, 5, 400).astype(jnp.float32)
    dense = actor_params["params"]["Dense_0"]
    np.testing.assert_allclose(  # the first layer of the flattened grid
        jax.nn.relu(flat @ dense["kernel"] + dense["bias"])[0, 0],
        jax.nn.relu(jnp.ones(400) @ dense["kernel"] + dense["bias"]),
        rtol=1e-6,
    )


def test_learned_log_std_starts_at_the_traced_init_log_std():
    config = PPOConfig(policy_std="learned", hidden_sizes=(4,))
    actor = make_mlp_networks(make_spec(action_dim=2), config).actor
    init = jax.jit(jax.vmap(actor.init, in_axes=(None, 0)))
    hps = jax.vmap(lambda v: config.hyperparams().replace(init_log_std=v))(
        jnp.array([-1.0, 0.5])
    )
    log_std = init(jax.random.key(0), hps)["params"]["log_std"]
    np.testing.assert_array_equal(log_std, [[-1.0, -1.0], [0.5, 0.5]])


def test_cnn_shapes_dtypes_and_refusal():
    spec = make_spec(obs_shape=(10, 10, 4), action_dim=3, discrete=True)
    spec = spec._replace(obs_dtype=np.dtype(np.bool_))
    config = PPOConfig(network="cnn", policy_std=None, conv_channels=(8, 4))
    nets = make_networks(spec, config)
    hp = config.hyperparams()
    params = nets.actor.init(jax.random.key(0), hp)
    kernels = [p["kernel"].shape for k, p in params["params"].items() if "Conv" in k]
    assert kernels == [(3, 3, 4, 8), (3, 3, 8, 4)]
    grids = jnp.ones((2, 5, 10, 10, 4), jnp.bool_)
    out = nets.actor.apply(params, grids).out
    assert out.shape == (2, 5, 3) and out.dtype == jnp.float32
    assert nets.actor.apply(params, grids[0, 0]).out.shape == (3,)
    values = nets.critic.apply(nets.critic.init(jax.random.key(1), hp), grids)
    assert values.shape == (2, 5) and values.dtype == jnp.float32

    with pytest.raises(ConfigError, match="height, width, channels"):
        make_networks(make_spec(obs_shape=(3,)), config.replace(policy_std="fixed"))


@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
def test_patch_conv_equals_a_same_convolution(kernel):
    """PatchConv (one matmul of neighbourhoods) against lax's convolution with
    the same kernel and bias, for odd and even kernels ("SAME" padding)."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 7, 6, 4))
    module = PatchConv(
        5, kernel, nn.initializers.normal(1.0), nn.initializers.normal(1.0)
    )
    params = module.init(jax.random.key(1), x)
    conv = nn.Conv(5, (kernel, kernel), padding="SAME")
    want = conv.apply(params, x)
    np.testing.assert_allclose(module.apply(params, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape",
    [(64, 3, 64), (64, 64, 64), (2200, 64, 64), (5, 11, 64, 1)],
    ids=["small", "small-limit", "large", "time-major"],
)
def test_dense_matmul_gradient_equals_numpy(shape):
    # The dense layers' custom VJP (the kernel gradient from a transposed copy
    # of x) against the closed form in float64 numpy: dy = 2 (x W) for the
    # loss sum((x W)^2), dx = dy W^T, dW = x^T dy over all leading axes.
    # Dense layers take it only for small products, XLA's own gradient else.
    *lead, d_in, d_out = shape
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (*lead, d_in), jnp.float32)
    w = jax.random.normal(kw, (d_in, d_out), jnp.float32)
    dense_jaxpr = jax.make_jaxpr(
        lambda x, w: dense_dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))
    )(x, w)
    takes_custom = "custom_vjp" in str(dense_jaxpr)
    assert takes_custom == (shape != (2200, 64, 64)), dense_jaxpr

    def loss(x, w):
        return jnp.sum(matmul(x, w) ** 2)

    dx, dw = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    dy = 2 * x64 @ w64
    assert dx.dtype == dw.dtype == jnp.float32
    np.testing.assert_allclose(dx, dy @ w64.T, rtol=1e-4, atol=1e-3)
    rows, dy_rows = x64.reshape(-1, d_in), dy.reshape(-1, d_out)
    np.testing.assert_allclose(dw, rows.T @ dy_rows, rtol=1e-4, atol=1e-2)
    # vmapped over 3 scaled copies (seeds): dW scales by s**2, dx by s
    xs = jnp.stack([x, 2 * x, -x])
    dxs, dws = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), (0, None)))(xs, w)
    for i, scale in enumerate([1.0, 2.0, -1.0]):
        np.testing.assert_allclose(dws[i], scale**2 * dw, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(dxs[i], scale * dx, rtol=1e-4, atol=1e-2)
