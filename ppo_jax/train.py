"""The training pipeline: one pure, compiled function of a PRNG key.

Data flow of one iteration (``iteration_step``)::

    rollout (scan over rollout_length, vmapped envs)
      -> critic values of the batch (one forward pass)
      -> rewards-to-go (reverse scan) and normalized advantages
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
from ppo_jax.envs import env_spec, make_env
from ppo_jax.networks import make_networks
from ppo_jax.returns import normalize_advantages, rewards_to_go
from ppo_jax.rollout import EnvBatch, make_rollout, reset_envs
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
    actor_loss: jax.Array  # float32, mean over the iteration's gradient steps
    critic_loss: jax.Array  # float32


class Pipeline(NamedTuple):
    """The pieces of a run, built once per static config."""

    config: PPOConfig
    env: object
    env_params: object
    actor: object  # flax module: obs -> mean action
    critic: object  # flax module: obs -> value
    init: object  # (key, hparams) -> RunnerState
    iteration_step: object  # (RunnerState, hparams) -> (RunnerState, Metrics)


def build_pipeline(config: PPOConfig) -> Pipeline:
    """Validate ``config`` (before anything compiles) and build the pure pieces."""
    config.validate()
    env, env_params = make_env(config)
    spec = env_spec(env, env_params, config.env_name)
    actor, critic = make_networks(
        config.hidden_sizes, config.activation, spec.action_dim
    )
    rollout = make_rollout(env, env_params, actor, config.rollout_length)
    update = make_update(actor, critic, config)

    def init(key: jax.Array, hp: Hyperparams) -> RunnerState:
        actor_key, critic_key, env_key, run_key = jax.random.split(key, 4)
        dummy_obs = jnp.zeros((spec.obs_dim,), jnp.float32)
        agent = init_agent(
            actor.init(actor_key, dummy_obs), critic.init(critic_key, dummy_obs), hp.lr
        )
        return RunnerState(
            agent=agent,
            envs=reset_envs(env, env_params, env_key, config.num_envs),
            key=run_key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def iteration_step(runner: RunnerState, hp: Hyperparams):
        key, rollout_key, update_key = jax.random.split(runner.key, 3)
        agent = runner.agent

        # 1. Rollout: [T, N] transitions with the current policy.
        envs, traj, stats = rollout(
            agent.actor_params, runner.envs, rollout_key, hp.action_variance
        )

        # 2. Critic once on every observation plus the one after the batch, whose
        #    value continues episodes cut by the batch end.
        all_obs = jnp.concatenate([traj.obs, envs.obs[None]], axis=0)
        values = critic.apply(agent.critic_params, all_obs)  # [T+1, N]
        returns = rewards_to_go(traj.reward, traj.done, hp.gamma, values[-1])
        advantages = normalize_advantages(returns - values[:-1])

        # 3. Update epochs on the flattened batch.
        def flat(x):
            return x.reshape((config.batch_size,) + x.shape[2:])

        batch = Batch(
            obs=flat(traj.obs),
            action=flat(traj.action),
            old_log_prob=flat(traj.log_prob),
            advantage=flat(advantages),
            target=flat(returns),
        )
        agent, (actor_loss, critic_loss) = update(agent, batch, update_key, hp)

        iteration = runner.iteration + 1
        episodes = jnp.maximum(stats.count, 1)
        no_episode = stats.count == 0
        metrics = Metrics(
            iteration=iteration,
            timesteps=iteration * config.batch_size,
            mean_return=jnp.where(no_episode, jnp.nan, stats.return_sum / episodes),
            mean_length=jnp.where(no_episode, jnp.nan, stats.length_sum / episodes),
            num_episodes=stats.count,
            actor_loss=actor_loss,
            critic_loss=critic_loss,
        )
        runner = RunnerState(agent=agent, envs=envs, key=key, iteration=iteration)
        return runner, metrics

    return Pipeline(config, env, env_params, actor, critic, init, iteration_step)


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
