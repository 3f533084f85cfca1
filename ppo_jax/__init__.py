"""ppo_jax: PPO-clip as one pure, compiled JAX function of a PRNG key.

Typical use::

    import jax
    from ppo_jax import PPOConfig, make_train

    train = jax.jit(make_train(PPOConfig(total_timesteps=200_000)))
    runner, metrics = train(jax.random.key(0))

Names are imported on first use, so that ``python -m ppo_jax.train`` and
``python -m ppo_jax.evaluate`` run their module exactly once (and import jax
only once they handle signals); the ``TYPE_CHECKING`` block gives type
checkers and editors the same names with their real types.

The package is laid out in layers, each importing only those before it:
``config`` -> ``envs``, ``networks`` -> ``algo`` (the traced algorithm) ->
``run`` (the host side of a run) -> ``analysis`` -> the commands
(``train``, ``evaluate``, ``export``, ``compare``).
"""

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # the real names and signatures, for mypy and editors
    from ppo_jax.algo.policy import Policy
    from ppo_jax.algo.ppo import (
        Metrics,
        RunnerState,
        build_pipeline,
        make_chunk,
        make_train,
    )
    from ppo_jax.algo.returns import normalize_advantages, rewards_to_go
    from ppo_jax.analysis.evaluation import evaluate_policy, load_policy, load_run
    from ppo_jax.config.ppo_config import PRESETS, Hyperparams, PPOConfig
    from ppo_jax.config.runspec import RunSpec
    from ppo_jax.config.schema import ConfigError
    from ppo_jax.envs import FAMILIES, Environment, EnvSpec, make_env
    from ppo_jax.envs.contract import MaskedObservation, MultiDiscrete
    from ppo_jax.networks import (
        NETWORKS,
        ActorCritic,
        ActorOutput,
        Network,
        NetworkFactory,
        flax_network,
    )
    from ppo_jax.run.callbacks import PolicySnapshot, StopRequest
    from ppo_jax.run.experiment import Experiment
    from ppo_jax.run.host_loop import run_training
    from ppo_jax.run.rundir import CheckpointError, RunDirError


_EXPORTS = {
    "PPOConfig": "ppo_jax.config.ppo_config",
    "Hyperparams": "ppo_jax.config.ppo_config",
    "PRESETS": "ppo_jax.config.ppo_config",
    "ConfigError": "ppo_jax.config.schema",
    "EnvSpec": "ppo_jax.envs",
    "Environment": "ppo_jax.envs",
    "FAMILIES": "ppo_jax.envs",
    "make_env": "ppo_jax.envs",
    "MaskedObservation": "ppo_jax.envs.contract",
    "MultiDiscrete": "ppo_jax.envs.contract",
    "ActorCritic": "ppo_jax.networks",
    "ActorOutput": "ppo_jax.networks",
    "Network": "ppo_jax.networks",
    "NetworkFactory": "ppo_jax.networks",
    "NETWORKS": "ppo_jax.networks",
    "flax_network": "ppo_jax.networks",
    "Policy": "ppo_jax.algo.policy",
    "rewards_to_go": "ppo_jax.algo.returns",
    "normalize_advantages": "ppo_jax.algo.returns",
    "make_train": "ppo_jax.algo.ppo",
    "make_chunk": "ppo_jax.algo.ppo",
    "build_pipeline": "ppo_jax.algo.ppo",
    "Metrics": "ppo_jax.algo.ppo",
    "RunnerState": "ppo_jax.algo.ppo",
    "load_policy": "ppo_jax.analysis.evaluation",
    "load_run": "ppo_jax.analysis.evaluation",
    "evaluate_policy": "ppo_jax.analysis.evaluation",
    "CheckpointError": "ppo_jax.run.rundir",
    "RunDirError": "ppo_jax.run.rundir",
    "RunSpec": "ppo_jax.config.runspec",
    "Experiment": "ppo_jax.run.experiment",
    "run_training": "ppo_jax.run.host_loop",
    "PolicySnapshot": "ppo_jax.run.callbacks",
    "StopRequest": "ppo_jax.run.callbacks",
}
# Every name of _EXPORTS, spelled out so that linters see them exported.
__all__ = [
    "ActorCritic",
    "ActorOutput",
    "CheckpointError",
    "ConfigError",
    "EnvSpec",
    "Environment",
    "Experiment",
    "FAMILIES",
    "Hyperparams",
    "MaskedObservation",
    "Metrics",
    "MultiDiscrete",
    "NETWORKS",
    "Network",
    "NetworkFactory",
    "PPOConfig",
    "PRESETS",
    "Policy",
    "PolicySnapshot",
    "RunDirError",
    "RunSpec",
    "RunnerState",
    "StopRequest",
    "build_pipeline",
    "evaluate_policy",
    "flax_network",
    "load_policy",
    "load_run",
    "make_chunk",
    "make_env",
    "make_train",
    "normalize_advantages",
    "rewards_to_go",
    "run_training",
]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ppo_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
