"""The configuration layer: what a run is, before anything is built.

- :mod:`~ppo_jax.config.schema`: declaring a field once (help, traceability,
  allowed values) and checking values against it;
- :mod:`~ppo_jax.config.ppo_config`: :class:`PPOConfig`, :class:`Hyperparams`
  and the named presets;
- :mod:`~ppo_jax.config.presets`: the per-environment tables of the presets;
- :mod:`~ppo_jax.config.files`: YAML/TOML/JSON config files;
- :mod:`~ppo_jax.config.runspec`: seeds and sweeps of one compiled program.

Imports nothing else of ppo_jax: every other layer may import it.
"""
