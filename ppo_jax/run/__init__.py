"""The host side of a run: the loop of compiled chunks around the algorithm.

- :mod:`~ppo_jax.run.host_loop`: ``run_training`` (checks, compile, chunks,
  checkpoints, the run's outcome);
- :mod:`~ppo_jax.run.experiment`: seeds and sweeps as one compiled program,
  placed on the devices; :mod:`~ppo_jax.run.distributed`: several processes;
- :mod:`~ppo_jax.run.rundir`: the run directory (config, checkpoint, metrics);
- :mod:`~ppo_jax.run.reporting`, :mod:`~ppo_jax.run.loggers`,
  :mod:`~ppo_jax.run.statistics`: progress lines, CSV/TensorBoard/wandb,
  the learning-curve plot and summaries over seeds;
- :mod:`~ppo_jax.run.resources`, :mod:`~ppo_jax.run.signals`: memory checks
  before compiling, Ctrl-C and SIGTERM;
- :mod:`~ppo_jax.run.callbacks`, :mod:`~ppo_jax.run.host_policy`: Python
  functions called between chunks, a run's policy as a numpy function;
- :mod:`~ppo_jax.run.search`: hyperparameter search with Optuna, trials
  vmapped K at a time in one compile.

Imports the layers below it (config, envs, networks, algo), never analysis or
the commands.
"""
