"""Ctrl-C and SIGTERM: a request to stop at the next safe point, never a
half-written file.

:class:`GracefulStop` turns the first signal into a flag that the code checks
where stopping is safe (before touching the run directory, at each chunk
boundary, after compiling); a second signal raises KeyboardInterrupt at once.
Nested uses share one flag, so the command line can take over the signals
before jax is even imported and the training loop sees a signal that came
during the imports. :func:`signals_deferred` holds the signals back while a
checkpoint and its metrics rows are written. Standard library only.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, ClassVar

Handler = Callable[[int, FrameType | None], Any] | int | None


class GracefulStop:
    """Turn the first Ctrl-C (or SIGTERM) into a request to stop at a safe point.

    ``with GracefulStop() as stop:`` installs the handlers (on the main thread)
    and restores the previous ones on exit; inside an active one, it returns
    the active one, so the flag is shared. ``stop.requested`` says whether a
    signal came; :meth:`check` raises KeyboardInterrupt if so.
    """

    _active: ClassVar[GracefulStop | None] = None

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Handler] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping at the next safe point (Ctrl-C again to abort now)",
            file=sys.stdout,
            flush=True,
        )

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> GracefulStop:
        active = GracefulStop._active
        if active is not None:
            return active
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
            GracefulStop._active = self
        return self

    def __exit__(self, *exc: object) -> None:
        if GracefulStop._active is self:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            GracefulStop._active = None


def check_stop() -> None:
    """Raise KeyboardInterrupt if the active :class:`GracefulStop` got a signal."""
    if GracefulStop._active is not None:
        GracefulStop._active.check()


# Held while a checkpoint and its metrics rows are written (not while the
# processes gather the checkpoint): a thread that must end the process (a lost
# peer, ppo_jax.run.distributed) waits for it first.
_WRITING = threading.Lock()


@contextlib.contextmanager
def writing_files() -> Iterator[None]:
    """Mark a checkpoint and its metrics rows being written (see
    :func:`wait_for_writes`)."""
    with _WRITING:
        yield


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a checkpoint and its metrics rows are
    written, so that a signal never separates the two; they arrive after."""
    held = {signal.SIGINT, signal.SIGTERM}
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        if on_main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def wait_for_writes(timeout_s: float) -> None:
    """Return once no :func:`writing_files` block is running (or after
    ``timeout_s``, a bound that a local write never comes near)."""
    if _WRITING.acquire(timeout=timeout_s):
        _WRITING.release()
