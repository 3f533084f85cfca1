"""The traced algorithm: PPO as pure JAX functions, built from a config, an
environment and networks.

- :mod:`~ppo_jax.algo.ppo`: ``make_train``, ``build_pipeline`` and one
  iteration (rollout, returns, update), ``make_chunk``;
- :mod:`~ppo_jax.algo.rollout`, :mod:`~ppo_jax.algo.returns`,
  :mod:`~ppo_jax.algo.update`, :mod:`~ppo_jax.algo.losses`: the phases;
- :mod:`~ppo_jax.algo.batch`: the batch and its shuffled minibatches;
- :mod:`~ppo_jax.algo.evaluation`: deterministic episodes (``eval_every``
  inside the run, and every evaluation after it);
- :mod:`~ppo_jax.algo.optimizer`: the optimizer, the agent state and the
  flat-parameter layout of small networks;
- :mod:`~ppo_jax.algo.policy`, :mod:`~ppo_jax.algo.distributions`,
  :mod:`~ppo_jax.algo.normalization`: acting, and what acting reads.

Imports the config, environment and network layers only.
"""
