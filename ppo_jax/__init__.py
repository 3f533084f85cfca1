"""ppo_jax: PPO-clip as one pure, compiled JAX function of a PRNG key.

Typical use::

    import jax
    from ppo_jax import PPOConfig, make_train

    train = jax.jit(make_train(PPOConfig(total_timesteps=200_000)))
    runner, metrics = train(jax.random.key(0))

Names are imported on first use, so that ``python -m ppo_jax.train`` and
``python -m ppo_jax.evaluate`` run their module exactly once.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "PPOConfig": "ppo_jax.config",
    "Hyperparams": "ppo_jax.config",
    "PRESETS": "ppo_jax.config",
    "ConfigError": "ppo_jax.schema",
    "EnvSpec": "ppo_jax.envs",
    "Environment": "ppo_jax.envs",
    "FAMILIES": "ppo_jax.envs",
    "make_env": "ppo_jax.envs",
    "ActorCritic": "ppo_jax.networks",
    "ActorOutput": "ppo_jax.networks",
    "Network": "ppo_jax.networks",
    "NetworkFactory": "ppo_jax.networks",
    "NETWORKS": "ppo_jax.networks",
    "flax_network": "ppo_jax.networks",
    "Policy": "ppo_jax.policy",
    "rewards_to_go": "ppo_jax.returns",
    "normalize_advantages": "ppo_jax.returns",
    "make_train": "ppo_jax.pipeline",
    "make_chunk": "ppo_jax.pipeline",
    "build_pipeline": "ppo_jax.pipeline",
    "Metrics": "ppo_jax.pipeline",
    "RunnerState": "ppo_jax.pipeline",
    "load_policy": "ppo_jax.evaluation",
    "load_run": "ppo_jax.evaluation",
    "evaluate_policy": "ppo_jax.evaluation",
    "CheckpointError": "ppo_jax.rundir",
    "RunDirError": "ppo_jax.rundir",
    "RunSpec": "ppo_jax.runspec",
    "Experiment": "ppo_jax.experiment",
    "run_training": "ppo_jax.host_loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ppo_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
