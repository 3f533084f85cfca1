"""Bring your own environment and network: through Python and the CLI,
learning with a clear margin, and malformed ones refused before compiling."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest
import user_components as uc
from conftest import run_cli

from ppo_jax import ConfigError, PPOConfig, build_pipeline, make_train
from ppo_jax.evaluate import main as evaluate_main
from ppo_jax.run.rundir import read_rows
from ppo_jax.train import main as train_main

TESTS = Path(__file__).resolve().parent
# MatchEnv: 8-step episodes, return = cards named right. Random: 2; learned: 8.
MATCH = PPOConfig(
    env_name="user_components:MatchEnv",
    policy_std=None,
    num_envs=8,
    rollout_length=32,
    total_timesteps=8 * 32 * 40,
    update_epochs=4,
    num_minibatches=4,
    lr=1e-2,
    hidden_sizes=(16,),
    save_freq=5,
)
MATCH_ARGS = [
    "--env", "user_components:MatchEnv", "--policy-std", "none", "--num-envs", "8",
    "--rollout-length", "32", "--total-timesteps", str(MATCH.total_timesteps),
    "--update-epochs", "4", "--num-minibatches", "4", "--lr", "1e-2",
    "--hidden-sizes", "16", "--save-freq", "5",
]  # fmt: skip


def assert_learned(returns):
    """From about chance (2 of 8, the first iteration's policy) to nearly always
    right, on every seed (measured over 8 seeds: at most 2.6 at first, at least
    7.5 over the last 5 iterations)."""
    returns = np.asarray(returns)
    first, last = returns[..., 0], returns[..., -5:].mean(-1)
    assert (first < 4.0).all() and (last > 6.5).all(), (first, last)


def test_own_env_object_trains_through_make_train():
    train = make_train(MATCH, env=uc.MatchEnv())
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(train))(keys)
    assert metrics.mean_return.shape == (2, MATCH.num_iterations)
    assert_learned(metrics.mean_return)


def test_own_network_factory_trains_through_make_train():
    train = make_train(MATCH, env=uc.MatchEnv(), network=uc.linear_networks)
    runner, metrics = jax.jit(train)(jax.random.key(1))
    # The user's parameter names, untouched by ppo_jax.
    assert set(runner.agent.actor_params["params"]) == {"logits"}
    assert runner.agent.actor_params["params"]["logits"]["kernel"].shape == (4, 4)
    assert_learned(metrics.mean_return)


def test_own_env_and_network_from_the_cli(tmp_path, monkeypatch):
    run_dir = tmp_path / "sign"
    proc = run_cli(
        *MATCH_ARGS, "--network", "user_components:linear_networks",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    returns = [r["mean_return"] for r in read_rows(run_dir)]
    assert len(returns) == MATCH.num_iterations
    assert_learned(returns)
    # The run directory is enough to evaluate it again (the env is imported).
    monkeypatch.syspath_prepend(str(TESTS))
    assert evaluate_main([str(run_dir), "--episodes", "4"]) == 0


MALFORMED = [
    (["--env", "user_components:FiveValueStep"], "step returns 5 values, not 6"),
    (["--env", "user_components:NoFinalObservation"], "final_observation"),
    (["--env", "user_components:MatrixActions"], "Discrete or a 1-D Box"),
    (["--env", "user_components:VectorReward"], "reward must be a scalar array"),
    (
        ["--env", "user_components:DictObservations"],
        "network='mlp' is not allowed: structured for dict observations read whole",
    ),
    (["--env", "user_components:Nowhere"], "no 'Nowhere'"),
    (["--env", "no_such_module:Env"], "an importable module"),
    (["--network", "user_components:too_wide_networks"], "has shape (4,), not (5,)"),
    (["--network", "user_components:tuple_networks"], "not a tuple"),
    (["--network", "user_components:failing_networks"], "no GPU found"),
    (
        ["--network", "lstm"],
        "one of mlp, cnn, gru, cnn-gru, structured, structured-gru, or module:factory",
    ),
    (
        ["--env", "user_components:EndlessMatch", "--eval-every", "2"],
        "eval_every=2 is not allowed: 0 (off) for user_components:EndlessMatch, "
        "whose episodes have no time limit",
    ),
]


@pytest.mark.parametrize("argv,message", MALFORMED)
def test_malformed_env_or_network_is_one_sentence_before_compiling(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.syspath_prepend(str(TESTS))
    base = ["--env", "user_components:MatchEnv", "--policy-std", "none"]
    run_dir = tmp_path / "r"
    assert train_main([*base, *argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message in err, err
    assert not run_dir.exists()  # refused before touching the disk


def test_malformed_env_is_refused_from_python_too():
    with pytest.raises(ConfigError, match="step returns 5 values"):
        make_train(MATCH, env=uc.FiveValueStep())


def test_dict_observations_with_a_key_chosen():
    config = MATCH.replace(obs_key="state")
    pipeline = build_pipeline(config, env=uc.DictObservations())
    assert pipeline.spec.obs_shape == (4,)  # the "state" entry, not "noise"
    with pytest.raises(ConfigError, match="obs_key='pixels'.*noise, state"):
        build_pipeline(config.replace(obs_key="pixels"), env=uc.DictObservations())
    _, metrics = jax.jit(make_train(config, env=uc.DictObservations()))(
        jax.random.key(0)
    )
    assert_learned(metrics.mean_return)


# Each "Bring your own" section lives in the README beside what it documents.
README_OF_HEADING = {
    "Bring your own environment": "ppo_jax/envs/README.md",
    "Bring your own network": "ppo_jax/networks/README.md",
}


def readme_block(heading: str) -> str:
    readme = (TESTS.parent / README_OF_HEADING[heading]).read_text()
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize(
    "heading", ["Bring your own environment", "Bring your own network"]
)
def test_readme_examples_run(heading):
    namespace: dict = {}
    label = f"{README_OF_HEADING[heading]}: {heading}"
    exec(compile(readme_block(heading), label, "exec"), namespace)
    returns = np.asarray(namespace["metrics"].mean_return)
    # Episodes end in most late iterations (not all: CartPole's preset collects
    # 256 steps an iteration, and a good policy's episodes are longer).
    assert np.isfinite(returns[-10:]).sum() >= 5
    # It learned something (the first iterations may end no episode: NaN):
    # some later iteration beats the first five clearly. Not the last ones: one
    # seed of PPO on CartPole can peak at 500 and sag to ~240 by 50k steps.
    assert np.nanmax(returns[5:]) > np.nanmean(returns[:5]) + 5


def test_run_training_with_an_env_object_records_where_it_came_from(
    tmp_path, monkeypatch
):
    from ppo_jax import RunSpec, load_policy, run_training
    from ppo_jax.run.rundir import load_config

    monkeypatch.syspath_prepend(str(TESTS))
    run_dir = tmp_path / "object"
    config = MATCH.replace(env_name="a label", total_timesteps=8 * 32 * 5)
    spec = RunSpec(config)
    assert run_training(spec, run_dir, env=uc.MatchEnv(), quiet=True) == 0
    assert load_config(run_dir).env_name == "user_components:MatchEnv"
    # Loadable without passing the object again: the class is imported.
    policy = load_policy(run_dir)
    assert policy(np.eye(4, dtype=np.float32)).shape == (4,)


def test_memory_bound_counts_the_networks_in_use_not_hidden_sizes():
    # hidden_sizes describes the built-in MLP only: with a user's linear
    # networks, a huge hidden_sizes must not make the run look too large.
    from ppo_jax.run.resources import check_memory

    config = MATCH.replace(hidden_sizes=(2**30,))
    check_memory(build_pipeline(config, env=uc.MatchEnv(), network=uc.linear_networks))
    with pytest.raises(ValueError, match="of memory"):
        check_memory(build_pipeline(config, env=uc.MatchEnv()))
