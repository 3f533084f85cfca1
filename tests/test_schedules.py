"""Learning-rate schedules against plain-Python references of the rate over a
run: the formulas alone, then the ``learning_rate`` column of a training run
(kill-and-resume of an adaptive-KL run: tests/test_scale.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppo_jax import ConfigError, PPOConfig, make_train
from ppo_jax.algo.optimizer import (
    AdaptiveRateState,
    adapt_rate,
    make_optimizer,
    scheduled_rate,
)

# 2 envs x 16 steps, 4 iterations: a run compiles in a second or two.
SMALL = PPOConfig(
    num_envs=2,
    rollout_length=16,
    total_timesteps=2 * 16 * 4,
    hidden_sizes=(8,),
    update_epochs=3,
    num_minibatches=2,
)


def reference_rate(step, total, lr, schedule, warmup=0.0):
    """The rate of gradient step ``step`` (0-based) in plain Python."""
    if schedule == "constant":
        return lr
    if schedule == "linear":
        return lr * (1 - step / total)
    warm = warmup * total
    if step < warm:
        return lr * min((step + 1) / warm, 1.0)
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))


def reference_adapted(rate, kl, target, margin, factor, low, high):
    """The adaptive-KL rule in plain Python."""
    if kl > target * margin:
        rate = rate / factor
    elif kl < target / margin:
        rate = rate * factor
    return min(max(rate, low), high)


@pytest.mark.parametrize(
    "schedule,warmup",
    [("constant", 0.0), ("linear", 0.0), ("cosine", 0.0), ("cosine", 0.25),
     ("cosine", 0.7)],
)  # fmt: skip
def test_scheduled_rate_matches_the_formula_at_every_step(schedule, warmup):
    config = SMALL.replace(lr=2e-3, lr_warmup=warmup)
    hp, total = config.hyperparams(), 40
    rates = jax.vmap(lambda c: scheduled_rate(c, hp, schedule, total))(
        jnp.arange(total)
    )
    want = [reference_rate(k, total, 2e-3, schedule, warmup) for k in range(total)]
    np.testing.assert_allclose(rates, want, rtol=1e-5, atol=1e-9)
    assert rates.dtype == jnp.float32
    assert float(rates.min()) > 0.0  # no step at rate 0, warm-up included


def test_the_optimizer_steps_at_the_scheduled_rate():
    # Adam's first step for a constant gradient is ~lr exactly (m/sqrt(v) = 1).
    config = SMALL.replace(lr_schedule="cosine", lr_warmup=0.5, lr=1e-2)
    total = config.num_gradient_steps
    tx = make_optimizer(config.hyperparams(), config)
    params, grads = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
    state, steps = tx.init(params), []
    for _ in range(total):
        updates, state = tx.update(grads, state, params)
        steps.append(-float(updates["w"]))
    want = [reference_rate(k, total, 1e-2, "cosine", 0.5) for k in range(total)]
    np.testing.assert_allclose(steps, want, rtol=1e-4)


def test_adaptive_rate_follows_a_scripted_kl_sequence():
    config = SMALL.replace(
        lr_schedule="adaptive_kl", lr=1e-3, lr_kl_target=0.01, lr_kl_margin=2.0,
        lr_factor=1.5, lr_min=2e-4, lr_max=3e-3,
    )  # fmt: skip
    hp = config.hyperparams()
    # Above 0.02: down; below 0.005: up; between: kept; NaN: kept; then runs
    # into both bounds.
    kls = [0.03, 0.03, 0.01, 0.004, float("nan"), 0.019, 0.021, *[0.1] * 6,
           *[0.0] * 12]  # fmt: skip
    rate, ref = jnp.float32(1e-3), 1e-3
    for kl in kls:
        rate = adapt_rate(rate, jnp.float32(kl), hp)
        ref = reference_adapted(ref, kl, 0.01, 2.0, 1.5, 2e-4, 3e-3)
        np.testing.assert_allclose(float(rate), ref, rtol=1e-6)
    assert ref == 3e-3  # the scripted sequence reached the upper bound
    # The optimizer steps at the state's rate.
    tx = make_optimizer(hp, config)
    params, grads = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
    state = tx.init(params)
    assert isinstance(state[-1], AdaptiveRateState)
    state = (*state[:-1], AdaptiveRateState(jnp.float32(5e-4)))
    updates, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(-float(updates["w"]), 5e-4, rtol=1e-4)


def train_metrics(config):
    _, metrics = jax.jit(make_train(config))(jax.random.key(0))
    return jax.device_get(metrics)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_runs_learning_rate_column_is_the_schedule(schedule):
    config = SMALL.replace(lr_schedule=schedule, lr_warmup=0.3, lr=1e-3)
    metrics = train_metrics(config)
    per_iteration = config.update_epochs * config.num_minibatches
    total = config.num_gradient_steps
    want = [
        reference_rate(i * per_iteration, total, 1e-3, schedule, 0.3)
        for i in range(1, config.num_iterations + 1)
    ]
    want[-1] = 0.0  # the rate after the last step (linear and cosine end at 0)
    np.testing.assert_allclose(metrics.learning_rate, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "every,epochs", [("epoch", 1), ("epoch", 3), ("minibatch", 1), ("minibatch", 3)]
)
def test_a_runs_adaptive_rate_follows_its_measured_kl(every, epochs):
    # Two minibatches per epoch: the first measures the KL before any step
    # (~0: the rate rises), the second after one step. The epoch's mean KL is
    # the metrics' approx_kl. With 3 epochs, a KL stop after the first
    # (target_kl tiny): the masked epochs must move the rate no more than
    # they move the parameters.
    config = SMALL.replace(
        lr_schedule="adaptive_kl", lr_adapt_every=every, lr=1e-3,
        num_minibatches=2, update_epochs=epochs, lr_kl_target=3e-6,
        target_kl=1e-12 if epochs > 1 else None, total_timesteps=2 * 16 * 8,
    )  # fmt: skip
    metrics = train_metrics(config)
    np.testing.assert_array_equal(metrics.epochs, 1.0)
    ref, want, moves = 1e-3, [], set()

    def adapted(rate, kl):
        new = reference_adapted(rate, kl, 3e-6, 2.0, 1.5, 1e-5, 1e-2)
        moves.add(np.sign(new - rate))
        return new

    for kl in metrics.approx_kl.astype(float):
        if every == "epoch":
            ref = adapted(ref, kl)
        else:  # step 1 at KL ~0, step 2 at the rest of the mean
            ref = adapted(adapted(ref, 0.0), 2 * kl)
        want.append(ref)
    np.testing.assert_allclose(metrics.learning_rate, want, rtol=1e-5)
    assert moves >= {-1.0, 1.0}  # it went up and down


def test_adaptive_settings_vmap_like_single_runs():
    config = SMALL.replace(lr_schedule="adaptive_kl", lr=1e-3)
    train = make_train(config)
    targets = [1e-7, 1e-2]
    hps = [config.replace(lr_kl_target=t).hyperparams() for t in targets]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *hps)
    keys = jnp.stack([jax.random.key(0)] * 2)
    _, swept = jax.jit(jax.vmap(train))(keys, stacked)
    single = jax.jit(train)
    for i, hp in enumerate(hps):
        _, alone = single(jax.random.key(0), hp)
        np.testing.assert_allclose(
            swept.learning_rate[i], alone.learning_rate, rtol=1e-4
        )
    # A low target only lowers the rate, a high one only raises it.
    assert float(swept.learning_rate[0, -1]) < 1e-3 < float(swept.learning_rate[1, -1])


def test_schedule_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="anneal_lr=True is not allowed"):
        SMALL.replace(anneal_lr=True, lr_schedule="cosine").validate()
    with pytest.raises(ConfigError, match=r"lr=0\.1 is not allowed: a rate within"):
        SMALL.replace(lr_schedule="adaptive_kl", lr=0.1).validate()
    with pytest.raises(ConfigError, match="lr_kl_margin=1.0 is not allowed"):
        SMALL.replace(lr_kl_margin=1.0).validate()
    # anneal_lr keeps working: it is the linear schedule.
    assert SMALL.replace(anneal_lr=True).schedule == "linear"
    assert SMALL.replace(anneal_lr=True, lr_schedule="linear").validate()
