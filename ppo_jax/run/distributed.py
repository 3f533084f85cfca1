"""Several processes (hosts), one run: ``jax.distributed`` behind three flags.

Every process runs the same command with its own ``--process-id``::

    python -m ppo_jax.train --num-seeds 4 --coordinator HOST:PORT \\
        --num-processes 2 --process-id 0      # and 1 on the other host

:func:`initialize` connects them before JAX starts (CPU devices exchange
data through gloo); ``jax.devices()`` then lists every process's devices and
the experiment's mesh spans them, so the runs are sharded across hosts as
across local devices. Process 0 alone writes the run directory and prints;
the others compute their share and take part in the collectives that bring
metrics and checkpoints together (``Experiment.gather``).
"""

from __future__ import annotations

import jax

from ppo_jax.config.schema import ConfigError


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join the ``num_processes`` processes of one run (call before any JAX
    computation). ``coordinator``: ``host:port`` of process 0.

    Raises:
        ConfigError: an id outside ``[0, num_processes)`` or a malformed
            address (one sentence, before connecting).
    """
    if not 0 <= process_id < num_processes:
        raise ConfigError(
            "process_id", process_id, f"in [0, {num_processes}) (--num-processes)"
        )
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError("coordinator", coordinator, "HOST:PORT of process 0")
    # CPU devices of different processes talk through gloo (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
    )


def is_writer() -> bool:
    """True in the process that writes the run directory and prints (0)."""
    return jax.process_index() == 0
