"""Legal-action masks and multi-discrete actions: the distributions against
plain numpy, a masked policy that never samples an illegal action, a user's
own masked and multi-part envs learning through make_train and the command
line (evaluation and export included), and malformed masks and spaces
refused in one sentence before compiling."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import user_components as uc
from conftest import make_spec, run_cli

from ppo_jax import ConfigError, MaskedObservation, PPOConfig, make_env, make_train
from ppo_jax.algo.distributions import (
    categorical,
    make_action_distribution,
    multi_categorical,
)
from ppo_jax.algo.policy import make_policy
from ppo_jax.analysis.evaluation import load_policy
from ppo_jax.analysis.exporting import npz_arrays
from ppo_jax.networks import make_networks
from ppo_jax.run.rundir import read_rows

TESTS = Path(__file__).resolve().parent


def numpy_masked(logits, mask):
    """Log-probabilities and entropy of a softmax over the legal entries
    only, written out: ``(log_p [..., n] (-inf where illegal), entropy [...])``."""
    logits = np.asarray(logits, np.float64)
    shifted = np.where(mask, logits, -np.inf)
    shifted = shifted - shifted.max(-1, keepdims=True)
    log_z = np.log(np.where(mask, np.exp(shifted), 0.0).sum(-1, keepdims=True))
    log_p = np.where(mask, shifted - log_z, -np.inf)
    p = np.where(mask, np.exp(np.where(mask, log_p, 0.0)), 0.0)
    entropy = -(p * np.where(mask, log_p, 0.0)).sum(-1)
    return log_p, entropy


def random_masks(rng, shape):
    """Random bool masks with at least one legal entry per row."""
    mask = rng.random(shape) < 0.5
    rows = np.flatnonzero(~mask.reshape(-1, shape[-1]).any(-1))
    flat = mask.reshape(-1, shape[-1])  # a view: an all-illegal row gets one
    flat[rows, rng.integers(0, shape[-1], rows.size)] = True
    return mask


def test_masked_log_prob_and_entropy_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (64, 6)).astype(np.float32)
    mask = random_masks(rng, (64, 6))
    log_p, entropy = numpy_masked(logits, mask)
    dist = categorical(jnp.asarray(logits), jnp.asarray(mask))
    actions = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
    np.testing.assert_allclose(
        dist.log_prob(actions), log_p[np.arange(64), actions], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(dist.entropy(), entropy, rtol=1e-5, atol=1e-5)
    # Illegal actions have probability exactly 0; gradients stay finite.
    assert (np.asarray(dist.probs)[~mask] == 0).all()
    grad = jax.grad(
        lambda x: (
            categorical(x, mask).entropy().sum()
            + categorical(x, mask).log_prob(actions).sum()
        )
    )(jnp.asarray(logits))
    assert np.isfinite(grad).all() and (np.asarray(grad)[~mask] == 0).all()


def test_masked_policy_never_samples_an_illegal_action():
    rng = np.random.default_rng(1)
    # Logits that favour illegal actions strongly: masking must still win.
    mask = random_masks(rng, (16, 5))
    logits = np.where(mask, -5.0, 5.0).astype(np.float32)
    dist = categorical(jnp.asarray(logits), jnp.asarray(mask))
    draws = np.asarray(dist.sample(seed=jax.random.key(0), sample_shape=20_000))
    assert mask[np.arange(16), draws].all()
    # Every legal action is drawn (the mask does not drop legal ones).
    seen = np.zeros_like(mask)
    seen[np.arange(16)[None].repeat(len(draws), 0), draws] = True
    assert (seen == mask).all()
    # The deterministic action is the best legal one.
    mode = make_action_distribution(True, None).mode
    out = jax.tree.map(jnp.asarray, _actor_output(logits))
    np.testing.assert_array_equal(
        mode(out, jnp.asarray(mask)), np.where(mask, logits, -np.inf).argmax(-1)
    )


def _actor_output(logits):
    from ppo_jax.networks import ActorOutput

    return ActorOutput(out=logits, log_std=None)


def test_multi_discrete_is_the_sum_of_its_parts():
    rng = np.random.default_rng(2)
    parts = (3, 1, 4)
    logits = rng.normal(0.0, 2.0, (32, sum(parts))).astype(np.float32)
    mask = np.concatenate([random_masks(rng, (32, n)) for n in parts], -1)
    actions = np.stack(
        [
            [rng.choice(np.flatnonzero(m)) for m in part]
            for part in np.split(mask, np.cumsum(parts)[:-1], -1)
        ],
        -1,
    ).astype(np.int32)
    dist = multi_categorical(jnp.asarray(logits), parts, jnp.asarray(mask))
    log_prob, entropy = np.zeros(32), np.zeros(32)
    starts = np.cumsum((0, *parts[:-1]))
    for i, (start, n) in enumerate(zip(starts, parts, strict=True)):
        log_p, h = numpy_masked(
            logits[:, start : start + n], mask[:, start : start + n]
        )
        log_prob += log_p[np.arange(32), actions[:, i]]
        entropy += h
    np.testing.assert_allclose(dist.log_prob(actions), log_prob, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dist.entropy(), entropy, rtol=1e-5, atol=1e-5)
    # Samples: int32 [..., parts], each part within its legal choices.
    draws = np.asarray(dist.sample(seed=jax.random.key(3), sample_shape=2000))
    assert draws.shape == (2000, 32, 3) and draws.dtype == np.int32
    for i, (start, n) in enumerate(zip(starts, parts, strict=True)):
        legal = mask[:, start : start + n]
        assert legal[np.arange(32), draws[..., i]].all()
    # Unmasked, a part's padding (parts of unequal size) is never drawn.
    free = multi_categorical(jnp.asarray(logits), parts)
    draws = np.asarray(free.sample(seed=jax.random.key(4), sample_shape=2000))
    assert (draws < np.asarray(parts)).all()
    mode = make_action_distribution(True, None, parts).mode
    best = mode(_actor_output(jnp.asarray(logits)), jnp.asarray(mask))
    for i, (start, n) in enumerate(zip(starts, parts, strict=True)):
        part = np.where(
            mask[:, start : start + n], logits[:, start : start + n], -np.inf
        )
        np.testing.assert_array_equal(best[:, i], part.argmax(-1))


def test_policy_reads_the_mask_of_its_observations():
    spec = make_spec((7,), 7, discrete=True)._replace(
        action_parts=(3, 4), action_mask=True
    )
    config = PPOConfig(policy_std=None, hidden_sizes=(8,))
    nets = make_networks(spec, config)
    policy = make_policy(nets.actor, spec, config)
    params = nets.actor.init(jax.random.key(0), config.hyperparams())
    rng = np.random.default_rng(5)
    mask = np.concatenate(
        [random_masks(rng, (256, 3)), random_masks(rng, (256, 4))], -1
    )
    obs = MaskedObservation(jnp.asarray(rng.normal(size=(256, 7)), jnp.float32), mask)
    sample = jax.jit(policy.sample)(
        params, (), obs, jax.random.key(1), config.hyperparams(), ()
    )
    action = np.asarray(sample.action)
    assert action.shape == (256, 2) and action.dtype == np.int32
    assert mask[np.arange(256), action[:, 0]].all()
    assert mask[np.arange(256), 3 + action[:, 1]].all()
    dist = policy.dist(params, sample.seen_obs, config.hyperparams())
    np.testing.assert_allclose(dist.log_prob(sample.action), sample.log_prob, atol=1e-6)


PAIR = PPOConfig(
    env_name="user_components:MaskedPairEnv",
    policy_std=None,
    num_envs=16,
    rollout_length=16,
    total_timesteps=16 * 16 * 30,
    update_epochs=4,
    num_minibatches=4,
    lr=1e-2,
    hidden_sizes=(32,),
    save_freq=10,
)


@pytest.fixture(scope="module")
def pair_runs():
    """2 seeds of MaskedPairEnv, vmapped: ``mean_return [2, iterations]``."""
    train = make_train(PAIR, env=uc.MaskedPairEnv())
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(train))(keys)
    return np.asarray(metrics.mean_return)


def test_masked_multi_discrete_env_learns_through_make_train(pair_runs):
    # Random legal play scores about 2.1 of 4 per episode, perfect play 4;
    # one illegal part in a rollout's episodes would cost 1000 over at most
    # 64 of them, taking that iteration's mean below 0.
    assert (pair_runs > 0).all(), pair_runs.min()
    first, last = pair_runs[:, 0], pair_runs[:, -5:].mean(-1)
    assert (first < 2.8).all() and (last > 3.5).all(), (first, last)


def test_spec_of_a_masked_multi_discrete_env():
    spec = make_env(PAIR, env=uc.MaskedPairEnv()).spec
    assert spec.discrete and spec.action_parts == (3, 4)
    assert spec.action_dim == 7 and spec.action_mask and spec.action_shape == (2,)
    assert make_env(PAIR, env=uc.MatchEnv()).spec.action_mask is False


class WrongMaskShape(uc.MaskedMatchEnv):
    def _masked(self, obs):
        return MaskedObservation(obs, jnp.ones(obs.shape[:-1] + (5,), jnp.bool_))


class FloatMask(uc.MaskedMatchEnv):
    def _masked(self, obs):
        return MaskedObservation(obs, jnp.ones_like(obs))


class MaskOnlyAtReset(uc.MaskedMatchEnv):
    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        info = {"final_observation": info["final_observation"].obs}
        return obs.obs, state, reward, terminated, truncated, info


class MaskedBox(uc.MaskedMatchEnv):
    def action_space(self, params):
        return uc.Box(-1.0, 1.0, (4,))


class ZeroChoicePart(uc.MaskedPairEnv):
    def action_space(self, params):
        return uc.MultiDiscreteSpace((3, 0))


@pytest.mark.parametrize(
    "env, says",
    [
        (WrongMaskShape(), r"mask must be bool of shape \(4,\).*shape \(5,\)"),
        (FloatMask(), r"mask must be bool of shape \(4,\).*float32"),
        (MaskOnlyAtReset(), r"must be a MaskedObservation"),
        (MaskedBox(), r"masks are for discrete actions"),
        (ZeroChoicePart(), r"MultiDiscrete space needs .* at least 1"),
    ],
)
def test_malformed_masks_and_spaces_are_refused_in_one_sentence(env, says):
    with pytest.raises(ConfigError) as e:
        make_train(PAIR, env=env)
    message = str(e.value)
    assert re.search(says, message), message
    assert "\n" not in message and message.count(". ") == 0, message


def test_masked_env_from_the_cli_trains_evaluates_and_exports(tmp_path, monkeypatch):
    run_dir = tmp_path / "masked"
    proc = run_cli(
        "--env", "user_components:MaskedMatchEnv", "--policy-std", "none",
        "--num-envs", "8", "--rollout-length", "32", "--total-timesteps",
        str(8 * 32 * 30), "--update-epochs", "4", "--num-minibatches", "4",
        "--lr", "1e-2", "--hidden-sizes", "16", "--save-freq", "10",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    returns = np.array([r["mean_return"] for r in read_rows(run_dir)])
    # Random legal play: 4 of 8; an illegal action: -1000.
    assert (returns > 0).all() and returns[-5:].mean() > 7.0, returns
    monkeypatch.syspath_prepend(str(TESTS))
    policy = load_policy(run_dir)
    obs = np.eye(4, dtype=np.float32)
    legal_next = MaskedObservation(obs, np.roll(np.eye(4, dtype=bool), 1, -1))
    # With only the next card legal, the policy names it, not the card it sees.
    np.testing.assert_array_equal(policy(legal_next), (np.arange(4) + 1) % 4)
    arrays = npz_arrays(*_loaded(run_dir))
    assert bool(arrays["action_mask"]) and arrays["action_parts"].shape == (0,)


def _loaded(run_dir):
    from ppo_jax.analysis.evaluation import load_run

    return load_run(run_dir)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--env", "test_action_masks:MaskOnlyAtReset"], "must be a MaskedObservation"),
        (["--env", "xminigrid/XLand-MiniGrid-R1-9x9"], "needs a ruleset"),
        (["--env", "jumanji/Sokoban-v0"], "never downloads at run time"),
        (["--env", "jumanji/SearchAndRescue-v0"], "actions"),
        (["--env", "pgx/bridge_bidding"], "pgx downloads"),
        (["--env", "navix/MiniGrid-Empty-5x5-v0"], "did you mean Navix-Empty-5x5-v0"),
        (["--env", "pgx/kuhn_poker", "--network", "cnn"], "[height, width"),
        (["--env", "jumanji/Game2048-v1", "--network", "mlp"], "structured for dict"),
    ],
)
def test_command_line_refusals_are_one_line_and_exit_2(argv, says, capsys, monkeypatch):
    from test_hostile import one_line_refusal

    from ppo_jax.train import main as train_main

    monkeypatch.syspath_prepend(str(TESTS))
    line = one_line_refusal(capsys, train_main, [*argv, "--preset", "tuned"])
    assert says in line, line
