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

Faults: the address is checked before connecting, process 0 checks its port,
the others wait a stated time for the coordinator; once running, a process
whose peer is gone (killed, crashed, ended with an error) stops within
seconds with one sentence and :data:`EXIT_PEER_LOST`, its run directory at a
chunk boundary, and starting every process again with ``--resume`` continues.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import jax

from ppo_jax.config.schema import ConfigError
from ppo_jax.run.signals import wait_for_writes

# The exit code of a process whose peer process is gone (killed, crashed or
# stopped early): the run directory keeps the last chunk's checkpoint and
# metrics, and starting every process again with --resume continues the run.
EXIT_PEER_LOST = 5
# Seconds a lost peer's survivor waits for a checkpoint being written to end.
WRITE_GRACE_S = 10.0
_WATCH_KEY = "ppo_jax/peer_watch_port"

# How long a process waits for process 0's coordinator to answer (seconds;
# jax's own default): processes on several hosts start minutes apart.
# PPO_JAX_COORDINATOR_TIMEOUT overrides it.
COORDINATOR_TIMEOUT_S = 300


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join the ``num_processes`` processes of one run (call before any JAX
    computation). ``coordinator``: ``host:port`` of process 0.

    Process 0 checks that its coordinator's port is free; the others wait
    for it to answer, at most :func:`coordinator_timeout` seconds.

    Raises:
        ConfigError: an id outside ``[0, num_processes)``, a malformed
            address, a port in use, or no coordinator in time (one sentence).
    """
    host, port, timeout_s = check_arguments(coordinator, num_processes, process_id)
    if process_id == 0:
        _check_port_free(coordinator, port)
    else:
        _wait_for_coordinator(coordinator, host, port, timeout_s)
    # CPU devices of different processes talk through gloo (GPUs use NCCL).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
    )
    _watch_peers(host, timeout_s)


def check_arguments(
    coordinator: str, num_processes: int, process_id: int
) -> tuple[str, int, int]:
    """``(host, port, timeout_s)``, or one sentence: the process id, the
    address and ``PPO_JAX_COORDINATOR_TIMEOUT`` checked without connecting."""
    if not 0 <= process_id < num_processes:
        raise ConfigError(
            "process_id", process_id, f"in [0, {num_processes}) (--num-processes)"
        )
    host, port = _address(coordinator)
    return host, port, coordinator_timeout()


def coordinator_timeout() -> int:
    """Seconds to wait for the coordinator: ``PPO_JAX_COORDINATOR_TIMEOUT`` or
    :data:`COORDINATOR_TIMEOUT_S`."""
    text = os.environ.get("PPO_JAX_COORDINATOR_TIMEOUT", "")
    if not text:
        return COORDINATOR_TIMEOUT_S
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            "PPO_JAX_COORDINATOR_TIMEOUT", text, "a whole number of seconds >= 1"
        )
    return int(text)


def _address(coordinator: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError("coordinator", coordinator, "HOST:PORT of process 0")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(
            "coordinator", coordinator, "HOST:PORT with a port from 1 to 65535"
        )
    return host.strip("[]"), int(port)


def _check_port_free(coordinator: str, port: int) -> None:
    """Process 0 serves the coordinator on ``port``: refuse a port in use now
    (jax would abort the process with a native stack trace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                "coordinator",
                coordinator,
                f"a free port for process 0's coordinator ({port} is in use "
                "on this machine)",
            ) from e


def _wait_for_coordinator(
    coordinator: str, host: str, port: int, timeout_s: float
) -> None:
    """Wait until process 0's coordinator accepts connections; after
    ``timeout_s`` refuse in one sentence (jax would abort the process)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    "coordinator",
                    coordinator,
                    f"the address of a running process 0 (nothing answered there "
                    f"within {timeout_s:g} s: start process 0 with the same "
                    "--coordinator, or set PPO_JAX_COORDINATOR_TIMEOUT)",
                ) from None
            time.sleep(0.5)


class _PeerWatch:
    """A TCP link from process 0 to every other process, beside jax's own.

    JAX's collectives wait for a lost peer until its coordination service
    times out, then abort the process with a native stack trace. These links
    notice at once: a link that closes without a goodbye (:func:`goodbye`)
    ends this process with one sentence and :data:`EXIT_PEER_LOST`, after any
    checkpoint being written is complete."""

    def __init__(self) -> None:
        self.links: list[socket.socket] = []

    def watch(self, link: socket.socket, peer: str) -> None:
        self.links.append(link)
        threading.Thread(target=self._wait, args=(link, peer), daemon=True).start()

    def _wait(self, link: socket.socket, peer: str) -> None:
        try:
            said = link.recv(16)
        except OSError:
            said = b""
        if said.startswith(b"bye"):
            return
        _lost.set()
        wait_for_writes(WRITE_GRACE_S)
        os.write(
            2,
            f"error: {peer} of this run is gone (its link closed); stopping "
            f"process {jax.process_index()} with exit code {EXIT_PEER_LOST}: the "
            "run directory keeps the checkpoint and metrics of the last chunk; "
            "start every process again with --resume RUN_DIR\n".encode(),
        )
        os._exit(EXIT_PEER_LOST)


_watch = _PeerWatch()
_lost = threading.Event()  # set once a link closed without a goodbye
# Seconds an error in a run over several processes waits for the links to say
# whether a peer is gone (its collectives then fail here too, often first).
PEER_NOTICE_S = 5.0


def stop_if_peer_lost() -> None:
    """Call on an error during a run over several processes: when a peer is
    gone, JAX's collectives fail in this process too, often before the link
    notices. Waits up to :data:`PEER_NOTICE_S` for the link; if a peer is
    lost, leaves the ending to the watch (one sentence, EXIT_PEER_LOST)
    instead of a traceback. Returns at once with one process."""
    if _watch.links and _lost.wait(PEER_NOTICE_S):
        threading.Event().wait()  # the watch thread ends the process


def _watch_peers(host: str, timeout_s: int) -> None:
    """Link process 0 with every other process (see :class:`_PeerWatch`);
    process 0's port travels through jax's key-value store."""
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    assert client is not None  # jax.distributed.initialize ran
    count = jax.process_count()
    if jax.process_index() == 0:
        server = socket.create_server(("", 0))
        client.key_value_set(_WATCH_KEY, str(server.getsockname()[1]))

        def accept() -> None:
            with server:
                for _ in range(count - 1):
                    link, _ = server.accept()
                    _watch.watch(link, "another process")

        threading.Thread(target=accept, daemon=True).start()
    else:
        port = int(client.blocking_key_value_get(_WATCH_KEY, timeout_s * 1000))
        _watch.watch(socket.create_connection((host, port), timeout_s), "process 0")
        _watch.links[-1].settimeout(None)


def goodbye() -> None:
    """Tell the other processes that this one ends normally (call after the
    run's last collective): their links to it then close quietly."""
    for link in _watch.links:
        try:
            link.sendall(b"bye")
        except OSError:
            pass


def is_writer() -> bool:
    """True in the process that writes the run directory and prints (0)."""
    return jax.process_index() == 0
