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

A network with memory (``--network gru``) is a :class:`RecurrentNetwork`:
``step(params, carry, obs) -> (carry, output)`` for one time step, with a
``carry`` ``[..., *carry_shape]`` per observation that starts (and restarts at
every episode start) as ``initial_carry(batch_shape)``; the rest of ppo_jax
(:mod:`ppo_jax.networks.memory`) carries it through rollouts, replays sequences in the
update and keeps it in checkpoints. Actor and critic may each be either kind.

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

from ppo_jax._imports import error_summary, import_object, is_import_path
from ppo_jax.config.ppo_config import Hyperparams, PPOConfig
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import EnvSpec, PyTree

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
class RecurrentNetwork(Generic[OutT]):
    """A network with memory, one time step at a time, as pure functions."""

    init: Callable[[jax.Array, Hyperparams], Params]  # (key, hparams) -> params
    # batch shape -> the carry at an episode start, [*batch_shape, ...]
    initial_carry: Callable[[tuple[int, ...]], PyTree]
    # (params, carry [..., ...], obs [..., *shape]) -> (next carry, out)
    step: Callable[[Params, PyTree, jax.Array], tuple[PyTree, OutT]]
    # Optional, a faster equivalent of scanning ``step`` over time:
    # (params, carry [n, ...], obs [T, n, *shape], first [T, n] bool) ->
    # (carries after each step [T, n, ...], outs [T, n, ...]), restarting the
    # carry at initial_carry before every step marked first. (A learned
    # log-std stays [action_dim].)
    sequence: (
        Callable[[Params, PyTree, jax.Array, jax.Array], tuple[PyTree, OutT]] | None
    ) = None


AnyNetwork: TypeAlias = Network[OutT] | RecurrentNetwork[OutT]


@dataclasses.dataclass(frozen=True)
class ActorCritic:
    """The policy network and the value network of one agent."""

    actor: AnyNetwork[ActorOutput]
    critic: AnyNetwork[jax.Array]
    # The critic's widest activation per observation (floats), if the factory
    # knows it; only a memory estimate reads it (0: unknown, not counted).
    critic_width: int = 0


class NetworkFactory(Protocol):
    """``factory(spec, config) -> ActorCritic``."""

    def __call__(self, spec: EnvSpec, config: PPOConfig) -> ActorCritic: ...


# name -> "module:factory"; a new network is one module and one line here.
NETWORKS: dict[str, str] = {
    "mlp": "ppo_jax.networks.mlp:make_mlp_networks",
    "cnn": "ppo_jax.networks.cnn:make_cnn_networks",
    "gru": "ppo_jax.networks.gru:make_gru_networks",
    "cnn-gru": "ppo_jax.networks.gru:make_cnn_gru_networks",
    "structured": "ppo_jax.networks.structured:make_structured_networks",
    "structured-gru": "ppo_jax.networks.gru:make_structured_gru_networks",
}


def is_recurrent(networks: ActorCritic) -> bool:
    """Does the actor or the critic carry memory from step to step?"""
    return isinstance(networks.actor, RecurrentNetwork) or isinstance(
        networks.critic, RecurrentNetwork
    )


def flax_network(module: nn.Module, spec: EnvSpec) -> Network[Any]:
    """A :class:`Network` of a flax module ``obs [..., *obs_shape] -> out``,
    initialized on one zero observation."""
    dummy = spec.zero_observation()
    return Network(init=lambda key, hp: module.init(key, dummy), apply=module.apply)


def require_array_observations(spec: EnvSpec, config: PPOConfig) -> None:
    """Refuse (one sentence) dict observations read whole for a network that
    reads one array."""
    if spec.obs_structure is not None:
        names = ", ".join(spec.obs_structure)
        raise ConfigError(
            "network",
            config.network,
            f"structured for dict observations read whole ({names}), or obs_key "
            "naming the one entry this network reads",
        )


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
        name: str,
        network: AnyNetwork[Any],
        obs: Any,
        lead: tuple[int, ...],
    ) -> Any:
        """The output's shape for observations ``[*lead, *shape]``."""

        def apply(o: jax.Array) -> Any:
            params = network.init(key, hp)
            if isinstance(network, Network):
                return None, network.apply(params, o)
            carry = network.initial_carry(lead)
            return carry, network.step(params, carry, o)

        try:
            carry, out = jax.eval_shape(apply, obs)
        except Exception as e:  # the user's code: any error becomes one sentence
            raise refuse(
                f"{name} works on observations of shape {_shape_text(obs)} (it failed "
                f"with {error_summary(e)})"
            ) from e
        if carry is None:
            return out
        next_carry, out = out
        structure: Any = jax.tree.structure(carry)
        same_structure = bool(jax.tree.structure(next_carry) == structure)
        if not same_structure or any(
            (a.shape, a.dtype) != (b.shape, b.dtype)
            for a, b in zip(
                jax.tree.leaves(next_carry), jax.tree.leaves(carry), strict=True
            )
        ):
            raise refuse(f"{name}'s step returns a carry shaped as its initial_carry")
        if any(leaf.shape[: len(lead)] != lead for leaf in jax.tree.leaves(carry)):
            raise refuse(f"{name}'s initial_carry({lead}) has leading axes {lead}")
        recurrent = network if isinstance(network, RecurrentNetwork) else None
        if recurrent and recurrent.sequence is not None and len(lead) == 2:
            # [T, n] = lead: a sequence's outputs are a step's, stacked.
            sequence, initial_carry = recurrent.sequence, recurrent.initial_carry

            def replay(o: jax.Array) -> Any:
                params = network.init(key, hp)
                carry = initial_carry(lead[1:])
                return sequence(params, carry, o, jnp.zeros(lead, jnp.bool_))[1]

            try:
                replayed = jax.eval_shape(replay, obs)
            except Exception as e:  # the user's code: any error becomes one sentence
                raise refuse(
                    f"{name}'s sequence works on observations of shape "
                    f"{_shape_text(obs)} (it failed with {error_summary(e)})"
                ) from e
            shapes = [(x.shape, x.dtype) for x in jax.tree.leaves(out)]
            if [(x.shape, x.dtype) for x in jax.tree.leaves(replayed)] != shapes:
                raise refuse(f"{name}'s sequence returns what its step returns")
        return out

    critic_spec = spec.for_critic()
    for lead in ((), (2, 3)):
        obs = spec.observation_struct(lead)
        actor_out = output_shape("actor", networks.actor, obs, lead)
        critic_obs = critic_spec.observation_struct(lead)
        value = output_shape("critic", networks.critic, critic_obs, lead)
        if not isinstance(actor_out, ActorOutput):
            raise refuse(
                f"actor returns an ActorOutput(out, log_std), not a "
                f"{type(actor_out).__name__}"
            )
        want = lead + (spec.action_dim,)
        if actor_out.out.shape != want:
            what = "logits" if spec.discrete else "mean action"
            raise refuse(
                f"actor's output ({what}) for observations {_shape_text(obs)} has "
                f"shape {want}, not {actor_out.out.shape}"
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
                f"observations {_shape_text(critic_obs)}, not "
                f"{getattr(value, 'shape', None)}"
            )


def _shape_text(obs: Any) -> str:
    """An observation batch's shape, or its entries' shapes for a dict."""
    if isinstance(obs, dict):
        return "{" + ", ".join(f"{k}: {v.shape}" for k, v in obs.items()) + "}"
    return str(obs.shape)
