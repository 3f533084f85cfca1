"""The update phase against an independent reference: separate gradients for
actor and critic and a hand-written Adam (PyTorch's formula) in numpy."""

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax import PPOConfig
from ppo_jax.distributions import fixed_variance_gaussian
from ppo_jax.losses import clipped_surrogate_loss, value_loss
from ppo_jax.networks import make_networks
from ppo_jax.update import Batch, init_agent, make_update, shuffled_minibatches


def numpy_adam(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam's update for a list of numpy arrays."""
    t = state["t"] + 1
    new = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        state["m"][i] = b1 * state["m"][i] + (1 - b1) * g
        state["v"][i] = b2 * state["v"][i] + (1 - b2) * g * g
        m_hat = state["m"][i] / (1 - b1**t)
        v_hat = state["v"][i] / (1 - b2**t)
        new.append(p - lr * m_hat / (np.sqrt(v_hat) + eps))
    state["t"] = t
    return new


def test_full_batch_epochs_match_two_separate_adams():
    config = PPOConfig(update_epochs=3, hidden_sizes=(8, 8), lr=1e-2)
    hp = config.hyperparams()
    actor, critic = make_networks(config.hidden_sizes, "relu", action_dim=2)
    rng = np.random.default_rng(0)
    B = 64
    batch = Batch(
        obs=jnp.asarray(rng.normal(size=(B, 3)), jnp.float32),
        action=jnp.asarray(rng.normal(size=(B, 2)), jnp.float32),
        old_log_prob=jnp.asarray(rng.normal(size=B) - 2.0, jnp.float32),
        advantage=jnp.asarray(rng.normal(size=B), jnp.float32),
        target=jnp.asarray(rng.normal(size=B) * 5, jnp.float32),
    )
    a0 = actor.init(jax.random.key(0), batch.obs)
    c0 = critic.init(jax.random.key(1), batch.obs)
    agent, (actor_loss, critic_loss) = jax.jit(make_update(actor, critic, config))(
        init_agent(a0, c0, hp.lr), batch, jax.random.key(2), hp
    )

    def actor_objective(p):
        mean = actor.apply(p, batch.obs)
        logp = fixed_variance_gaussian(mean, 0.5).log_prob(batch.action)
        return clipped_surrogate_loss(logp, batch.old_log_prob, batch.advantage, 0.2)

    def critic_objective(p):
        return value_loss(critic.apply(p, batch.obs), batch.target)

    def reference(params, objective):
        leaves, treedef = jax.tree.flatten(params)
        leaves = [np.asarray(x, np.float64) for x in leaves]
        state = {"t": 0, "m": [0 * x for x in leaves], "v": [0 * x for x in leaves]}
        losses = []
        for _ in range(config.update_epochs):
            p = jax.tree.unflatten(
                treedef, [jnp.asarray(x, jnp.float32) for x in leaves]
            )
            loss, grads = jax.value_and_grad(objective)(p)
            losses.append(float(loss))
            grads = [np.asarray(g, np.float64) for g in jax.tree.leaves(grads)]
            leaves = numpy_adam(leaves, grads, state, config.lr)
        return leaves, np.mean(losses)

    want_actor, want_actor_loss = reference(a0, actor_objective)
    want_critic, want_critic_loss = reference(c0, critic_objective)
    for got, want in zip(jax.tree.leaves(agent.actor_params), want_actor, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for got, want in zip(
        jax.tree.leaves(agent.critic_params), want_critic, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.isclose(actor_loss, want_actor_loss, rtol=1e-5)
    assert np.isclose(critic_loss, want_critic_loss, rtol=1e-5)
    # The parameters really moved (the check above is not vacuous).
    assert not np.allclose(
        jax.tree.leaves(a0)[0], jax.tree.leaves(agent.actor_params)[0]
    )


def test_minibatches_cover_every_sample_once():
    batch = {"i": jnp.arange(24), "x": jnp.arange(48).reshape(24, 2)}
    mbs = shuffled_minibatches(jax.random.key(0), batch, 4)
    assert mbs["i"].shape == (4, 6) and mbs["x"].shape == (4, 6, 2)
    np.testing.assert_array_equal(np.sort(np.ravel(mbs["i"])), np.arange(24))
    np.testing.assert_array_equal(mbs["x"][..., 0], 2 * mbs["i"])  # rows stay paired
    other = shuffled_minibatches(jax.random.key(1), batch, 4)
    assert not np.array_equal(other["i"], mbs["i"])  # a fresh permutation per key
