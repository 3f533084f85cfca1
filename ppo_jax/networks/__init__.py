"""Networks: an actor and a critic from a factory, checked before compiling.

A *network factory* takes the environment's :class:`~ppo_jax.envs.EnvSpec` and
the config and returns an :class:`ActorCritic`: two :class:`Network` s, each a
pair of pure functions ``init(key, hparams) -> params`` and ``apply(params,
obs) -> output``, as brax's networks are. Observations reach ``apply`` with
their own shape and dtype, ``[..., *spec.obs_shape]``, with any number of
leading batch axes (none when evaluating one step).

- the actor returns an :class:`ActorOutput`: ``out`` ``[..., action_dim]`` (the
  Gaussian mean, or the logits of a discrete policy) and ``log_std``
  ``[action_dim]`` when ``policy_std="learned"`` (the actor creates and owns
  that parameter; ``None`` otherwise);
- the critic returns one value per observation, ``[...]``. With
  ``critic_obs_key`` (an asymmetric actor-critic) its observations are the
  critic's own, ``[..., *spec.for_critic().obs_shape]``: build it from
  ``spec.for_critic()``.

Factories are registered by name in :data:`NETWORKS` (``--network mlp``);
``--network module:factory`` or ``make_train(config, network=factory)`` brings
your own. :func:`flax_network` wraps a flax module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppo_jax.config import Hyperparams, PPOConfig
from ppo_jax.envs.contract import EnvSpec, PyTree
from ppo_jax.imports import error_summary, import_object, is_import_path
from ppo_jax.schema import ConfigError

Params: TypeAlias = PyTree  # a network's parameters (flax: {"params": {...}})
OutT = TypeVar("OutT")


class ActorOutput(NamedTuple):
    out: jax.Array  # [..., action_dim] mean action, or [..., num_actions] logits
    log_std: jax.Array | None  # [action_dim] learned log-std, else None


@dataclasses.dataclass(frozen=True)
class Network(Generic[OutT]):
    """A network as two pure functions."""

    init: Callable[[jax.Array, Hyperparams], Params]  # (key, hparams) -> params
    apply: Callable[[Params, jax.Array], OutT]  # (params, obs [..., *shape]) -> out


@dataclasses.dataclass(frozen=True)
class ActorCritic:
    """The policy network and the value network of one agent."""

    actor: Network[ActorOutput]
    critic: Network[jax.Array]
    # The critic's widest activation per observation (floats), if the factory
    # knows it; only a memory estimate reads it (0: unknown, not counted).
    critic_width: int = 0


class NetworkFactory(Protocol):
    """``factory(spec, config) -> ActorCritic``."""

    def __call__(self, spec: EnvSpec, config: PPOConfig) -> ActorCritic: ...


# name -> "module:factory"; a new network is one module and one line here.
NETWORKS: dict[str, str] = {
    "mlp": "ppo_jax.networks.mlp:make_mlp_networks",
}


def flax_network(module: nn.Module, spec: EnvSpec) -> Network[Any]:
    """A :class:`Network` of a flax module ``obs [..., *obs_shape] -> out``,
    initialized on one zero observation."""
    dummy = jnp.zeros(spec.obs_shape, spec.obs_dtype)
    return Network(init=lambda key, hp: module.init(key, dummy), apply=module.apply)


def resolve_factory(name: str) -> NetworkFactory:
    """The factory registered as ``name``, or imported from ``module:factory``."""
    if is_import_path(name):
        factory = import_object("network", name)
    elif name in NETWORKS:
        factory = import_object("network", NETWORKS[name])
    else:
        raise ConfigError(
            "network",
            name,
            f"one of {', '.join(NETWORKS)}, or module:factory for your own",
        )
    if not callable(factory):
        raise ConfigError("network", name, "a callable factory(spec, config)")
    factory_: NetworkFactory = factory
    return factory_


def make_networks(
    spec: EnvSpec, config: PPOConfig, factory: NetworkFactory | None = None
) -> ActorCritic:
    """Build and check the networks of ``config.network`` (or ``factory``).

    Raises:
        ConfigError: an unknown name, or a factory whose networks do not fit
            the environment (one sentence, found by tracing, before compiling).
    """
    label = config.network
    if factory is None:
        factory = resolve_factory(config.network)
    else:
        label = getattr(factory, "__qualname__", type(factory).__qualname__)
    try:
        networks = factory(spec, config)
    except ConfigError:
        raise
    except Exception as e:  # the user's code: any error becomes one sentence
        raise ConfigError(
            "network", label, f"a factory(spec, config) that works ({error_summary(e)})"
        ) from e
    check_networks(networks, spec, config, label)
    return networks


def check_networks(
    networks: ActorCritic, spec: EnvSpec, config: PPOConfig, label: str
) -> None:
    """Trace init and apply (``jax.eval_shape``) and check the output shapes for
    one observation and for a ``[2, 3]`` batch of them."""

    def refuse(what: str) -> ConfigError:
        return ConfigError("network", label, f"a network factory whose {what}")

    if not isinstance(networks, ActorCritic):
        raise refuse(f"result is an ActorCritic, not a {type(networks).__name__}")
    hp = config.hyperparams()
    key = jax.random.key(0)

    def output_shape(
        name: str, network: Network[Any], obs: jax.ShapeDtypeStruct
    ) -> Any:
        try:
            return jax.eval_shape(
                lambda o: network.apply(network.init(key, hp), o), obs
            )
        except Exception as e:  # the user's code: any error becomes one sentence
            raise refuse(
                f"{name} works on observations of shape {obs.shape} (it failed "
                f"with {error_summary(e)})"
            ) from e

    critic_spec = spec.for_critic()
    for lead in ((), (2, 3)):
        obs = jax.ShapeDtypeStruct(lead + spec.obs_shape, spec.obs_dtype)
        actor_out = output_shape("actor", networks.actor, obs)
        critic_obs = jax.ShapeDtypeStruct(
            lead + critic_spec.obs_shape, critic_spec.obs_dtype
        )
        value = output_shape("critic", networks.critic, critic_obs)
        if not isinstance(actor_out, ActorOutput):
            raise refuse(
                f"actor returns an ActorOutput(out, log_std), not a "
                f"{type(actor_out).__name__}"
            )
        want = lead + (spec.action_dim,)
        if actor_out.out.shape != want:
            what = "logits" if spec.discrete else "mean action"
            raise refuse(
                f"actor's output ({what}) for observations {obs.shape} has shape "
                f"{want}, not {actor_out.out.shape}"
            )
        learned = config.policy_std == "learned"
        log_std_shape = getattr(actor_out.log_std, "shape", None)
        if learned and log_std_shape != (spec.action_dim,):
            raise refuse(
                f"actor returns a learned log_std of shape ({spec.action_dim},) "
                f"with policy_std='learned', not {log_std_shape}"
            )
        if not learned and actor_out.log_std is not None:
            raise refuse(
                f"actor returns log_std=None with policy_std={config.policy_std!r}"
            )
        if getattr(value, "shape", None) != lead:
            raise refuse(
                f"critic returns one value per observation: shape {lead} for "
                f"observations {critic_obs.shape}, not "
                f"{getattr(value, 'shape', None)}"
            )
