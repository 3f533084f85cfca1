"""The update phase against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_spec

from ppo_jax import PPOConfig
from ppo_jax.algo.batch import (
    PACKED_PERMUTATION_MAX,
    Batch,
    random_permutation,
    shuffled_minibatches,
)
from ppo_jax.algo.losses import clipped_surrogate_loss, value_loss
from ppo_jax.algo.optimizer import clip_gradients, init_agent, make_optimizer
from ppo_jax.algo.policy import make_policy
from ppo_jax.algo.update import make_update
from ppo_jax.networks.mlp import make_mlp_networks


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


def make_setup(config, seed=0, batch_size=64, action_dim=2):
    """Networks, initial agent and a random batch for ``config``."""
    spec = make_spec(action_dim=action_dim)
    networks = make_mlp_networks(spec, config)
    actor, critic = networks.actor, networks.critic
    policy = make_policy(actor, spec, config)
    rng = np.random.default_rng(seed)
    batch = Batch(
        obs=jnp.asarray(rng.normal(size=(batch_size, 3)), jnp.float32),
        action=jnp.asarray(rng.normal(size=(batch_size, action_dim)), jnp.float32),
        old_log_prob=jnp.asarray(rng.normal(size=batch_size) - 2.0, jnp.float32),
        advantage=jnp.asarray(rng.normal(size=batch_size), jnp.float32),
        target=jnp.asarray(rng.normal(size=batch_size) * 5, jnp.float32),
        old_value=jnp.asarray(rng.normal(size=batch_size), jnp.float32),
    )
    hp = config.hyperparams()
    a0 = actor.init(jax.random.key(0), hp)
    c0 = critic.init(jax.random.key(1), hp)
    agent = init_agent(a0, c0, hp, config)
    update = jax.jit(make_update(networks, policy, config))
    return policy, critic, batch, agent, update, hp


def test_full_batch_epochs_match_two_separate_adams():
    config = PPOConfig(update_epochs=3, hidden_sizes=(8, 8), lr=1e-2)
    policy, critic, batch, agent0, update, hp = make_setup(config)
    agent, info = update(agent0, batch, jax.random.key(2), hp)

    def actor_objective(p):
        logp = policy.dist(p, batch.obs, hp).log_prob(batch.action)
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

    want_actor, want_actor_loss = reference(agent0.actor_params, actor_objective)
    want_critic, want_critic_loss = reference(agent0.critic_params, critic_objective)
    for got, want in zip(jax.tree.leaves(agent.actor_params), want_actor, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for got, want in zip(
        jax.tree.leaves(agent.critic_params), want_critic, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.isclose(info.actor_loss, want_actor_loss, rtol=1e-5)
    assert np.isclose(info.critic_loss, want_critic_loss, rtol=1e-5)
    assert float(info.epochs) == 3
    # The parameters really moved (the check above is not vacuous).
    before, after = (
        jax.tree.leaves(agent0.actor_params),
        jax.tree.leaves(agent.actor_params),
    )
    assert not np.allclose(before[0], after[0])


def test_joint_adam_equals_separate_adams_without_clipping():
    # Adam is elementwise: one optimizer over both networks takes the same steps
    # as two, as long as no global-norm clipping couples them.
    base = PPOConfig(update_epochs=2, num_minibatches=4, hidden_sizes=(8,))
    results = []
    for optimizer in ("separate", "joint"):
        config = base.replace(optimizer=optimizer)
        _, _, batch, agent0, update, hp = make_setup(config)
        results.append(update(agent0, batch, jax.random.key(3), hp)[0])
    for a, b in zip(
        jax.tree.leaves((results[0].actor_params, results[0].critic_params)),
        jax.tree.leaves((results[1].actor_params, results[1].critic_params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_target_kl_masks_the_epochs_after_the_first_breach():
    # Full batch: the first epoch's KL is 0 (ratio 1 before its step), the
    # second epoch's is > 0, so a tiny target stops after exactly 2 epochs.
    base = PPOConfig(update_epochs=5, hidden_sizes=(8,), lr=1e-2)
    tiny = base.replace(target_kl=1e-12)
    policy, _, batch, agent0, update_tiny, hp_tiny = make_setup(tiny)
    # The batch must come from the current policy for the first KL to be 0.
    dist = policy.dist(agent0.actor_params, batch.obs, hp_tiny)
    batch = batch._replace(old_log_prob=dist.log_prob(batch.action))
    stopped, info = update_tiny(agent0, batch, jax.random.key(0), hp_tiny)
    assert float(info.epochs) == 2
    two = base.replace(update_epochs=2)
    _, _, _, agent0, update_two, hp = make_setup(two)
    want, _ = update_two(agent0, batch, jax.random.key(0), hp)
    for a, b in zip(jax.tree.leaves(stopped), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # A target never reached runs every epoch.
    huge = base.replace(target_kl=1e6)
    _, _, _, agent0, update_huge, hp_huge = make_setup(huge)
    assert float(update_huge(agent0, batch, jax.random.key(0), hp_huge)[1].epochs) == 5


def test_entropy_bonus_raises_the_learned_std():
    config = PPOConfig(
        policy_std="learned", ent_coef=1.0, hidden_sizes=(8,), update_epochs=3
    )
    _, _, batch, agent0, update, hp = make_setup(config)
    batch = batch._replace(advantage=jnp.zeros_like(batch.advantage))
    agent, info = update(agent0, batch, jax.random.key(0), hp)
    assert np.all(agent.actor_params["params"]["log_std"] > 0)  # started at 0
    # entropy of a 2-d Gaussian with std 1: 2 * 0.5 * log(2 pi e)
    assert float(info.entropy) == pytest.approx(np.log(2 * np.pi * np.e), rel=0.05)


def test_gradient_clipping_clips_the_global_norm_not_elements():
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    clip = clip_gradients(PPOConfig(max_grad_norm=1.0).hyperparams())
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(clipped["a"], [0.6, 0.8], rtol=1e-6)  # not [1, 1]
    loose = clip_gradients(PPOConfig(max_grad_norm=10.0).hyperparams())
    np.testing.assert_array_equal(
        loose.update(grads, loose.init(grads))[0]["a"], [3, 4]
    )
    # No limit (the tutorial): gradients pass exactly unchanged.
    none = clip_gradients(PPOConfig().hyperparams())
    np.testing.assert_array_equal(none.update(grads, none.init(grads))[0]["a"], [3, 4])


def test_annealed_learning_rate_falls_linearly_to_zero():
    config = PPOConfig(
        anneal_lr=True, lr=1e-2, total_timesteps=2200 * 2, update_epochs=5
    )
    assert config.num_gradient_steps == 10
    tx = make_optimizer(config.hyperparams(), config)
    params = {"w": jnp.zeros(())}
    grads = {"w": jnp.ones(())}
    state = tx.init(params)
    steps = []
    for _ in range(10):
        updates, state = tx.update(grads, state, params)
        steps.append(-float(updates["w"]))
    # Adam's step for a constant gradient is ~lr: here lr * (1 - k / 10).
    np.testing.assert_allclose(steps, 1e-2 * (1 - np.arange(10) / 10), rtol=1e-4)


def test_minibatches_cover_every_sample_once():
    batch = {"i": jnp.arange(24), "x": jnp.arange(48).reshape(24, 2)}
    mbs = shuffled_minibatches(jax.random.key(0), batch, 4)
    assert mbs["i"].shape == (4, 6) and mbs["x"].shape == (4, 6, 2)
    np.testing.assert_array_equal(np.sort(np.ravel(mbs["i"])), np.arange(24))
    np.testing.assert_array_equal(mbs["x"][..., 0], 2 * mbs["i"])  # rows stay paired
    other = shuffled_minibatches(jax.random.key(1), batch, 4)
    assert not np.array_equal(other["i"], mbs["i"])  # a fresh permutation per key


@pytest.mark.parametrize("optimizer", ["joint", "separate"])
def test_flat_parameter_steps_equal_per_leaf_steps(monkeypatch, optimizer):
    # Small networks step as one flat vector per optimizer, large ones leaf by
    # leaf: the same Adam and clipping either way (up to float rounding), and
    # the agent keeps its tree layout (what checkpoints hold).
    import ppo_jax.algo.optimizer as optimizer_module

    config = PPOConfig(
        update_epochs=3, num_minibatches=4, hidden_sizes=(8,), optimizer=optimizer,
        max_grad_norm=0.5, adam_eps=1e-5,
    )  # fmt: skip
    results = []
    for limit in (10**9, 0):  # flat, then per leaf
        monkeypatch.setattr(optimizer_module, "FLAT_PARAMETERS_MAX", limit)
        _, _, batch, agent0, update, hp = make_setup(config)
        results.append(update(agent0, batch, jax.random.key(3), hp))
    (flat, flat_info), (tree, tree_info) = results
    assert jax.tree.structure(flat) == jax.tree.structure(agent0)
    assert jax.tree.structure(flat) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(flat), jax.tree.leaves(tree), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat_info.actor_loss, tree_info.actor_loss, rtol=1e-5)


def test_unrolled_minibatch_loop_equals_the_plain_one(monkeypatch):
    # Small minibatches take two gradient steps per loop iteration on a CPU
    # (an odd count, 3, leaves one step over): the same steps, so the same
    # agent up to float rounding.
    import ppo_jax.algo.batch as batch_module

    config = PPOConfig(
        update_epochs=2, num_minibatches=3, hidden_sizes=(8,), optimizer="joint",
        max_grad_norm=0.5, adam_eps=1e-5,
    )  # fmt: skip
    on_cpu = jax.default_backend() == "cpu"  # where the unroll applies
    results = []
    for limit, unroll in ((10**9, 2 if on_cpu else 1), (0, 1)):
        monkeypatch.setattr(batch_module, "MINIBATCH_UNROLL_MAX_SAMPLES", limit)
        assert batch_module.minibatch_unroll(16) == unroll
        _, _, batch, agent0, update, hp = make_setup(config, batch_size=48)
        results.append(update(agent0, batch, jax.random.key(3), hp))
    (unrolled, unrolled_info), (plain, plain_info) = results
    for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(
        jax.tree.leaves(unrolled.actor_params)[0],
        jax.tree.leaves(agent0.actor_params)[0],
    )  # the steps did move the parameters
    np.testing.assert_allclose(
        unrolled_info.actor_loss, plain_info.actor_loss, rtol=1e-5
    )


def test_random_permutation_is_uniform():
    # Each of 8 items lands in each of 8 positions with probability 1/8: a
    # chi-square test over 4,000 permutations (99.9% quantile for 49 dof: 85.4).
    perms = jax.vmap(lambda k: random_permutation(k, 8))(
        jax.random.split(jax.random.key(0), 4000)
    )
    perms = np.asarray(perms)
    assert perms.dtype == np.int32
    np.testing.assert_array_equal(
        np.sort(perms, axis=1), np.tile(np.arange(8), (4000, 1))
    )
    counts = np.stack([(perms == i).sum(axis=0) for i in range(8)])
    expected = 4000 / 8
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 85.4, chi2


@pytest.mark.parametrize(
    "n", [1, 2, 2048, PACKED_PERMUTATION_MAX, PACKED_PERMUTATION_MAX + 1]
)
def test_random_permutation_sizes(n):
    # Both paths (packed keys up to PACKED_PERMUTATION_MAX, argsort above)
    # give a permutation, and a shuffled one: a uniform permutation of n >= 2048
    # keeps about 1 item in place (Poisson(1)); n // 100 or more: odds < 1e-18.
    perm = np.asarray(
        jax.jit(random_permutation, static_argnums=1)(jax.random.key(1), n)
    )
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    if n >= 2048:
        assert (perm == np.arange(n)).sum() < n // 100
