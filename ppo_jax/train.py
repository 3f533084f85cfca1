"""The training pipeline: one pure, compiled function of a PRNG key.

Data flow of one iteration (``iteration_step``)::

    rollout (scan over rollout_length, vmapped envs)
      -> critic values of the batch (one forward pass)
      -> rewards-to-go or GAE (reverse scan) and normalized advantages
      -> update epochs (scan) of (mini)batch gradient steps (scan)

``make_train(config)`` returns ``train(key, hparams=None)``, a scan of
``iteration_step`` over every iteration. ``make_chunk`` returns the same step
scanned over a fixed number of iterations, which the CLI runs in a host loop
for progress reports and checkpoints without recompiling.

Run as ``python -m ppo_jax.train`` for the command line (see ``ppo_jax.cli``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.distributions import make_policy_distribution
from ppo_jax.envs import env_spec, make_env
from ppo_jax.networks import make_networks
from ppo_jax.returns import generalized_advantages, normalize_advantages, rewards_to_go
from ppo_jax.rollout import EnvBatch, make_rollout, observe, reset_envs
from ppo_jax.update import AgentState, Batch, init_agent, make_update


@struct.dataclass
class RunnerState:
    """Everything a run carries from one iteration to the next (checkpointable)."""

    agent: AgentState
    envs: EnvBatch
    key: jax.Array  # typed PRNG key
    iteration: jax.Array  # int32, iterations completed


class Metrics(NamedTuple):
    """Per-iteration metrics (scalars; ``[num_iterations]`` from ``train``)."""

    iteration: jax.Array  # int32, 1-based number of the iteration
    timesteps: jax.Array  # int32, env steps simulated so far
    mean_return: jax.Array  # float32, undiscounted, episodes ended this iteration
    mean_length: jax.Array  # float32, NaN (as mean_return) if none ended
    num_episodes: jax.Array  # int32, episodes ended this iteration
    actor_loss: jax.Array  # float32, clipped surrogate, mean over gradient steps
    critic_loss: jax.Array  # float32, value loss, mean over gradient steps
    entropy: jax.Array  # float32, policy entropy, mean over gradient steps
    approx_kl: jax.Array  # float32, mean over gradient steps
    epochs: jax.Array  # float32, epochs run (fewer than update_epochs: KL stop)
    all_finite: jax.Array  # bool: losses and all parameters finite after it


class Pipeline(NamedTuple):
    """The pieces of a run, built once per static config."""

    config: PPOConfig
    env: object
    env_params: object
    spec: object  # EnvSpec
    actor: object  # flax module: obs -> ActorOutput (mean action or logits)
    critic: object  # flax module: obs -> value
    policy: object  # PolicyDistribution: actor output -> distribution / mode
    rollout: object  # (actor_params, EnvBatch, key, hparams) -> envs, Transition, stats
    init: object  # (key, hparams) -> RunnerState
    iteration_step: object  # (RunnerState, hparams) -> (RunnerState, Metrics)


def build_pipeline(config: PPOConfig) -> Pipeline:
    """Validate ``config`` (before anything compiles) and build the pure pieces."""
    config.validate()
    env, env_params = make_env(config)
    spec = env_spec(env, env_params, config.env_name)
    actor, critic = make_networks(
        config.hidden_sizes,
        config.activation,
        spec.action_dim,
        ortho_init=config.ortho_init,
        learned_std=config.policy_std == "learned",
    )
    policy = make_policy_distribution(config.policy_std)
    rollout = make_rollout(env, env_params, actor, policy, config, spec)
    update = make_update(actor, critic, policy, config)

    def init(key: jax.Array, hp: Hyperparams) -> RunnerState:
        actor_key, critic_key, env_key, run_key = jax.random.split(key, 4)
        dummy_obs = jnp.zeros((spec.obs_dim,), jnp.float32)
        actor_params = actor.init(actor_key, dummy_obs)
        if config.policy_std == "learned":
            log_std = jnp.full((spec.action_dim,), hp.init_log_std, jnp.float32)
            actor_params = {"params": {**actor_params["params"], "log_std": log_std}}
        critic_params = critic.init(critic_key, dummy_obs)
        return RunnerState(
            agent=init_agent(actor_params, critic_params, hp, config),
            envs=reset_envs(env, env_params, env_key, config),
            key=run_key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def iteration_step(runner: RunnerState, hp: Hyperparams):
        key, rollout_key, update_key = jax.random.split(runner.key, 3)
        agent = runner.agent

        # 1. Rollout: [T, N] transitions with the current policy.
        envs, traj, stats = rollout(agent.actor_params, runner.envs, rollout_key, hp)

        # 2. Critic once on every observation plus the one after the batch, whose
        #    value continues episodes cut by the batch end (and, with
        #    bootstrap_truncation, on the pre-reset observations).
        value_obs = [traj.obs, observe(envs, config)[None]]
        if config.bootstrap_truncation:
            value_obs.append(traj.final_obs)
        values = critic.apply(agent.critic_params, jnp.concatenate(value_obs, axis=0))
        T = config.rollout_length
        batch_values, bootstrap = values[:T], values[T]
        rewards = traj.reward
        if config.bootstrap_truncation:
            # A time-limit end is not terminal: add the discounted value of the
            # observation the episode was cut at.
            final_values = values[T + 1 :]
            rewards = rewards + hp.gamma * jnp.where(traj.truncated, final_values, 0.0)

        # 3. Advantages and value targets.
        if config.advantage == "gae":
            advantages = generalized_advantages(
                rewards, batch_values, traj.done, hp.gamma, hp.gae_lambda, bootstrap
            )
            targets = advantages + batch_values
        else:
            targets = rewards_to_go(rewards, traj.done, hp.gamma, bootstrap)
            advantages = targets - batch_values
        advantages = normalize_advantages(advantages)

        # 4. Update epochs on the flattened batch.
        def flat(x):
            return x.reshape((config.batch_size,) + x.shape[2:])

        batch = Batch(
            obs=flat(traj.obs),
            action=flat(traj.action),
            old_log_prob=flat(traj.log_prob),
            advantage=flat(advantages),
            target=flat(targets),
            old_value=flat(batch_values),
        )
        agent, info = update(agent, batch, update_key, hp)

        iteration = runner.iteration + 1
        episodes = jnp.maximum(stats.count, 1)
        no_episode = stats.count == 0
        metrics = Metrics(
            iteration=iteration,
            timesteps=iteration * config.batch_size,
            mean_return=jnp.where(no_episode, jnp.nan, stats.return_sum / episodes),
            mean_length=jnp.where(no_episode, jnp.nan, stats.length_sum / episodes),
            num_episodes=stats.count,
            actor_loss=info.actor_loss,
            critic_loss=info.critic_loss,
            entropy=info.entropy,
            approx_kl=info.approx_kl,
            epochs=info.epochs,
            all_finite=_all_finite(
                (
                    info.actor_loss,
                    info.critic_loss,
                    agent.actor_params,
                    agent.critic_params,
                )
            ),
        )
        runner = RunnerState(agent=agent, envs=envs, key=key, iteration=iteration)
        return runner, metrics

    return Pipeline(
        config,
        env,
        env_params,
        spec,
        actor,
        critic,
        policy,
        rollout,
        init,
        iteration_step,
    )


def _all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` is finite (the NaN guard's signal)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train(config: PPOConfig):
    """Build the whole run as one pure function.

    Returns:
        ``train(key, hparams=None) -> (RunnerState, Metrics)`` where ``key`` is a
        ``jax.random.key`` and ``hparams`` a :class:`Hyperparams` (default:
        ``config.hyperparams()``; pass traced or vmapped values for sweeps).
        Metrics leaves have shape ``[config.num_iterations]``. Both
        ``jax.jit(train)`` and ``jax.jit(jax.vmap(train))`` work.
    """
    pipeline = build_pipeline(config)

    def train(key: jax.Array, hparams: Hyperparams | None = None):
        hp = config.hyperparams() if hparams is None else hparams
        runner = pipeline.init(key, hp)
        return jax.lax.scan(
            lambda r, _: pipeline.iteration_step(r, hp),
            runner,
            None,
            length=config.num_iterations,
        )

    return train


def make_chunk(pipeline: Pipeline, chunk_iterations: int):
    """``run_chunk(runner, hparams) -> (runner, Metrics[chunk_iterations])``.

    Scans ``chunk_iterations`` iterations. Iterations past
    ``config.num_iterations`` leave the runner unchanged (their metrics rows are
    to be dropped), so the last chunk of a run reuses the same compiled
    function instead of compiling a shorter one.
    """
    total = pipeline.config.num_iterations

    def run_chunk(runner: RunnerState, hp: Hyperparams):
        def body(runner, _):
            new_runner, metrics = pipeline.iteration_step(runner, hp)
            active = runner.iteration < total
            runner = jax.tree.map(
                lambda new, old: jnp.where(active, new, old), new_runner, runner
            )
            return runner, metrics

        return jax.lax.scan(body, runner, None, length=chunk_iterations)

    return run_chunk


if __name__ == "__main__":
    from ppo_jax.cli import train_main

    raise SystemExit(train_main())
