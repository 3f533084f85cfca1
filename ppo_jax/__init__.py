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
    "ConfigError": "ppo_jax.config",
    "PRESETS": "ppo_jax.config",
    "rewards_to_go": "ppo_jax.returns",
    "normalize_advantages": "ppo_jax.returns",
    "make_train": "ppo_jax.train",
    "make_chunk": "ppo_jax.train",
    "build_pipeline": "ppo_jax.train",
    "Metrics": "ppo_jax.train",
    "RunnerState": "ppo_jax.train",
    "load_policy": "ppo_jax.evaluate",
    "evaluate_policy": "ppo_jax.evaluate",
    "CheckpointError": "ppo_jax.checkpoint",
    "RunSpec": "ppo_jax.experiment",
    "Experiment": "ppo_jax.experiment",
    "run_training": "ppo_jax.host_loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ppo_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
