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

Both take the doors of :func:`build_pipeline`: your own environment object
(``env``, ``env_params``) and network factory (``network``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from flax import struct

from ppo_jax.algo.batch import Batch
from ppo_jax.algo.evaluation import evaluate_episodes, evaluation_due
from ppo_jax.algo.optimizer import AgentState, current_rate, init_agent
from ppo_jax.algo.policy import Observation, ObservationStats, Policy, make_policy
from ppo_jax.algo.returns import (
    generalized_advantages,
    normalize_advantages,
    rewards_to_go,
)
from ppo_jax.algo.rollout import EnvBatch, Rollout, Transition, make_rollout, reset_envs
from ppo_jax.algo.update import make_update
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import Environment, EnvSetup, EnvSpec, make_env
from ppo_jax.envs.contract import PyTree, critic_part
from ppo_jax.networks import (
    ActorCritic,
    AnyNetwork,
    Network,
    NetworkFactory,
    Params,
    is_recurrent,
    make_networks,
)
from ppo_jax.networks.memory import (
    Memory,
    apply_sequence,
    episode_starts,
    initial_memory,
    network_step,
    restart,
)


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
    # The policy after this iteration (its mode, or samples: eval_actions) on
    # eval_episodes fresh episodes (means; NaN where not evaluated: eval_every).
    eval_return: jax.Array  # float32, undiscounted
    eval_length: jax.Array  # float32, steps
    actor_loss: jax.Array  # float32, clipped surrogate, mean over gradient steps
    critic_loss: jax.Array  # float32, value loss, mean over gradient steps
    entropy: jax.Array  # float32, policy entropy, mean over gradient steps
    approx_kl: jax.Array  # float32, mean over gradient steps
    epochs: jax.Array  # float32, epochs run (fewer than update_epochs: KL stop)
    learning_rate: jax.Array  # float32, the rate the next gradient step uses
    all_finite: jax.Array  # bool: losses and all parameters finite after it

    @staticmethod
    def zeros() -> Metrics:
        """Every metric 0 (False), in its dtype: rows that are dropped."""
        i32, f32 = jnp.int32, jnp.float32
        dtypes = (i32, i32, f32, f32, i32, f32, f32, f32, f32, f32, f32, f32, f32,
                  jnp.bool_)  # fmt: skip
        return Metrics(*(jnp.zeros((), dtype) for dtype in dtypes))


Init: TypeAlias = Callable[[jax.Array, Hyperparams], RunnerState]
IterationStep: TypeAlias = Callable[
    [RunnerState, Hyperparams], tuple[RunnerState, Metrics]
]
# (actor_params, obs_stats) -> (mean return, mean length) of an evaluation.
Evaluate: TypeAlias = Callable[
    [Params, ObservationStats, Hyperparams], tuple[jax.Array, jax.Array]
]


class Pipeline(NamedTuple):
    """The pieces of a run, built once per static config."""

    config: PPOConfig
    setup: EnvSetup  # the environment, its params and its spec
    networks: ActorCritic
    policy: Policy  # obs -> action, for the rollout and every evaluation
    rollout: Rollout  # (actor_params, EnvBatch, key, hp) -> envs, Transition, stats
    init: Init  # (key, hparams) -> RunnerState
    iteration_step: IterationStep  # (RunnerState, hparams) -> (RunnerState, Metrics)
    evaluate: Evaluate  # the eval_every evaluation of a policy (config's episodes)

    @property
    def spec(self) -> EnvSpec:
        return self.setup.spec


def build_pipeline(
    config: PPOConfig,
    *,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
) -> Pipeline:
    """Validate ``config``, the environment and the networks (before anything
    compiles) and build the pure pieces.

    ``env``/``env_params``: your own environment (see
    :mod:`ppo_jax.envs.contract`) instead of ``config.env_name``; ``network``:
    your own factory (see :mod:`ppo_jax.networks`) instead of ``config.network``.

    Raises:
        ConfigError: one sentence on the first thing that does not fit.
    """
    config.validate()
    setup = make_env(config, env, env_params)
    networks = make_networks(setup.spec, config, network)
    recurrent = is_recurrent(networks)
    if recurrent and config.num_envs % config.num_minibatches:
        raise ConfigError(
            "num_minibatches",
            config.num_minibatches,
            f"a divisor of num_envs={config.num_envs} with a recurrent network "
            "(each minibatch holds whole sequences of some envs)",
        )
    policy = make_policy(networks.actor, setup.spec, config)
    rollout = make_rollout(setup, policy, config)
    eval_steps = setup.spec.max_episode_steps
    if config.eval_every and eval_steps is None:
        raise ConfigError(
            "eval_every",
            config.eval_every,
            f"0 (off) for {config.env_name}, whose episodes have no time limit "
            "(an evaluation's episodes run to it)",
        )
    update = make_update(networks, policy, config)

    def init(key: jax.Array, hp: Hyperparams) -> RunnerState:
        actor_key, critic_key, env_key, run_key = jax.random.split(key, 4)
        actor_params = networks.actor.init(actor_key, hp)
        critic_params = networks.critic.init(critic_key, hp)
        return RunnerState(
            agent=init_agent(actor_params, critic_params, hp, config),
            envs=reset_envs(
                setup, env_key, config, initial_memory(networks, config.num_envs)
            ),
            key=run_key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def iteration_step(
        runner: RunnerState, hp: Hyperparams
    ) -> tuple[RunnerState, Metrics]:
        key, rollout_key, update_key = jax.random.split(runner.key, 3)
        agent = runner.agent

        # 1. Rollout: [T, N] transitions with the current policy.
        start_memory = runner.envs.memory
        envs, traj, stats = rollout(agent.actor_params, runner.envs, rollout_key, hp)

        # 2. Critic values of the batch and of the observation after it, whose
        #    value continues episodes cut by the batch end (and, with
        #    bootstrap_truncation, of the pre-reset observations).
        last_obs = policy.observe(envs.obs, envs.obs_stats)
        batch_values, bootstrap, final_values, critic_carry = critic_values(
            networks.critic, agent.critic_params, start_memory.critic, traj, last_obs
        )
        envs = dataclasses.replace(envs, memory=Memory(envs.memory.actor, critic_carry))
        rewards = traj.reward
        if traj.truncated is not None and final_values is not None:
            # bootstrap_truncation: a time-limit end is not terminal; add the
            # discounted value of the observation the episode was cut at.
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

        # 4. Update epochs on the flattened batch (time-major sequences with
        #    their episode starts and initial carries for recurrent networks).
        def flat(x: jax.Array) -> jax.Array:
            return x if recurrent else x.reshape((config.batch_size,) + x.shape[2:])

        batch = Batch(
            obs=jax.tree.map(flat, traj.obs),
            action=flat(traj.action),
            old_log_prob=flat(traj.log_prob),
            advantage=flat(advantages),
            target=flat(targets),
            old_value=flat(batch_values),
            first=episode_starts(traj.done) if recurrent else None,
            memory=start_memory if recurrent else None,
        )
        agent, info = update(agent, batch, update_key, hp)

        iteration = runner.iteration + 1
        episodes = jnp.maximum(stats.episodes, 1)
        no_episode = stats.episodes == 0
        metrics = Metrics(
            iteration=iteration,
            timesteps=iteration * config.batch_size,
            mean_return=jnp.where(no_episode, jnp.nan, stats.return_sum / episodes),
            mean_length=jnp.where(no_episode, jnp.nan, stats.length_sum / episodes),
            num_episodes=stats.episodes,
            eval_return=jnp.float32(jnp.nan),
            eval_length=jnp.float32(jnp.nan),
            actor_loss=info.actor_loss,
            critic_loss=info.critic_loss,
            entropy=info.entropy,
            approx_kl=info.approx_kl,
            epochs=info.epochs,
            learning_rate=current_rate(agent.opt_state, hp, config),
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

    def evaluate(
        actor_params: Params, obs_stats: ObservationStats, hp: Hyperparams
    ) -> tuple[jax.Array, jax.Array]:
        assert eval_steps is not None  # refused above when evaluations are on
        returns, lengths = evaluate_episodes(
            setup,
            policy,
            actor_params,
            obs_stats,
            jax.random.key(config.eval_seed),
            config.eval_episodes,
            eval_steps,
            sample=config.eval_actions == "sample",
            hp=hp,
        )
        return jnp.mean(returns), jnp.mean(lengths.astype(jnp.float32))

    return Pipeline(
        config, setup, networks, policy, rollout, init, iteration_step, evaluate
    )


def with_evaluation(
    pipeline: Pipeline,
    runner: RunnerState,
    metrics: Metrics,
    due: jax.Array,
    hp: Hyperparams,
    run_axis: str | None = None,
) -> Metrics:
    """``metrics`` with the evaluation of ``runner``'s policy where ``due``
    (bool). The evaluation is a branch taken only when some run is due: ``due``
    must not be batched over vmapped runs, or ``run_axis`` must name the vmap
    axis (then all runs evaluate when one is due, each keeps its own)."""
    if pipeline.config.eval_every == 0:
        return metrics
    any_due = due
    if run_axis is not None:
        any_due = jax.lax.psum(due.astype(jnp.int32), run_axis) > 0

    def run(runner: RunnerState) -> tuple[jax.Array, jax.Array]:
        return pipeline.evaluate(runner.agent.actor_params, runner.envs.obs_stats, hp)

    def skip(runner: RunnerState) -> tuple[jax.Array, jax.Array]:
        return jnp.float32(jnp.nan), jnp.float32(jnp.nan)

    mean_return, mean_length = jax.lax.cond(any_due, run, skip, runner)
    return metrics._replace(
        eval_return=jnp.where(due, mean_return, jnp.nan),
        eval_length=jnp.where(due, mean_length, jnp.nan),
    )


def critic_values(
    critic: AnyNetwork[jax.Array],
    params: Params,
    carry: PyTree,
    traj: Transition,
    last_obs: Observation,
) -> tuple[jax.Array, jax.Array, jax.Array | None, PyTree]:
    """The critic on a rollout: ``(values [T, N], bootstrap [N], final_values
    [T, N] or None, next carry)``.

    ``bootstrap`` is the value of ``last_obs`` (the observation after the
    batch), ``final_values`` those of the pre-reset observations (with
    ``bootstrap_truncation``). A critic with memory reads the rollout's
    observations in order from ``carry``, its carry at the rollout's start;
    the returned carry is ready for ``last_obs``. Without memory: one forward
    pass over everything at once, and the carry stays ``()``.
    """
    T = traj.done.shape[0]
    if isinstance(critic, Network):
        value_obs = [traj.obs, jax.tree.map(lambda x: x[None], last_obs)]
        if traj.final_obs is not None:
            value_obs.append(traj.final_obs)
        values = critic.apply(
            params, critic_part(jax.tree.map(lambda *x: jnp.concatenate(x), *value_obs))
        )
        final = values[T + 1 :] if traj.final_obs is not None else None
        return values[:T], values[T], final, carry
    sequence = jax.tree.map(
        lambda x, y: jnp.concatenate([x, y[None]]), traj.obs, last_obs
    )
    first = jnp.concatenate([episode_starts(traj.done), traj.done[-1:]])
    carries, values = apply_sequence(
        critic, params, carry, critic_part(sequence), first
    )
    final = None
    if traj.final_obs is not None:
        # The value of where an episode was cut: read after its last step.
        before = jax.tree.map(lambda c: c[:T], carries)
        final = network_step(critic, params, before, critic_part(traj.final_obs))[1]
    last_carry = jax.tree.map(lambda c: c[T - 1], carries)
    return values[:T], values[T], final, restart(critic, last_carry, traj.done[-1])


def _all_finite(tree: PyTree) -> jax.Array:
    """True when every leaf of ``tree`` is finite (the NaN guard's signal)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


Train: TypeAlias = Callable[..., tuple[RunnerState, Metrics]]
Chunk: TypeAlias = Callable[[RunnerState, Hyperparams], tuple[RunnerState, Metrics]]


def make_train(
    config: PPOConfig,
    env: Environment | None = None,
    env_params: PyTree | None = None,
    network: NetworkFactory | None = None,
) -> Train:
    """Build the whole run as one pure function.

    ``env``, ``env_params`` and ``network`` bring your own environment and
    network factory (see :func:`build_pipeline`).

    Returns:
        ``train(key, hparams=None) -> (RunnerState, Metrics)`` where ``key`` is a
        ``jax.random.key`` and ``hparams`` a :class:`Hyperparams` (default:
        ``config.hyperparams()``; pass traced or vmapped values for sweeps).
        Metrics leaves have shape ``[config.num_iterations]``. Both
        ``jax.jit(train)`` and ``jax.jit(jax.vmap(train))`` work.
    """
    pipeline = build_pipeline(config, env=env, env_params=env_params, network=network)

    def train(
        key: jax.Array, hparams: Hyperparams | None = None
    ) -> tuple[RunnerState, Metrics]:
        hp = config.hyperparams() if hparams is None else hparams
        runner = pipeline.init(key, hp)

        def body(runner: RunnerState, iteration: jax.Array):
            runner, metrics = pipeline.iteration_step(runner, hp)
            # ``iteration`` comes from the scan, not the (maybe vmapped)
            # runner: the same for every run, so evaluation stays a branch.
            due = evaluation_due(iteration, config)
            return runner, with_evaluation(pipeline, runner, metrics, due, hp)

        iterations = jnp.arange(1, config.num_iterations + 1, dtype=jnp.int32)
        return jax.lax.scan(body, runner, iterations)

    return train


def make_chunk(
    pipeline: Pipeline, chunk_iterations: int, run_axis: str | None = None
) -> Chunk:
    """``run_chunk(runner, hparams) -> (runner, Metrics[chunk_iterations])``.

    Scans ``chunk_iterations`` iterations. Iterations past
    ``config.num_iterations`` leave the runner unchanged (their metrics rows are
    to be dropped), so the last chunk of a run reuses the same compiled
    function instead of compiling a shorter one.

    ``run_axis``: the ``axis_name`` of a ``jax.vmap`` of ``run_chunk`` over
    runs, so that evaluations (``eval_every``) run only at iterations where
    some run is due, and iterations past the end are skipped once every run
    has ended (vmapped without it, they are computed and then dropped).
    """
    config = pipeline.config
    total = config.num_iterations

    def run_chunk(runner: RunnerState, hp: Hyperparams) -> tuple[RunnerState, Metrics]:
        def step(runner: RunnerState) -> tuple[RunnerState, Metrics]:
            return pipeline.iteration_step(runner, hp)

        def skip(runner: RunnerState) -> tuple[RunnerState, Metrics]:
            return runner, Metrics.zeros()

        def body(runner: RunnerState, _: None) -> tuple[RunnerState, Metrics]:
            # A branch, not a select of every leaf: less to compile, and the
            # iterations past the end are not computed. Vmapped, a batched
            # predicate turns the branch into a select that computes both
            # sides; an unbatched "some run is still running" (a psum over
            # the runs) keeps the outer branch a branch.
            running = runner.iteration < total

            def advance(runner: RunnerState) -> tuple[RunnerState, Metrics]:
                return jax.lax.cond(running, step, skip, runner)

            if run_axis is None:
                runner, metrics = advance(runner)
            else:
                any_running = jax.lax.psum(running.astype(jnp.int32), run_axis) > 0
                runner, metrics = jax.lax.cond(any_running, advance, skip, runner)
            due = running & evaluation_due(runner.iteration, config)
            return runner, with_evaluation(pipeline, runner, metrics, due, hp, run_axis)

        return jax.lax.scan(body, runner, None, length=chunk_iterations)

    return run_chunk
