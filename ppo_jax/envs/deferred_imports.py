"""Modules a family's library imports but ppo_jax never uses, loaded on first use.

gymnax's environment modules import seaborn at import time for their
renderers (Pong's and MinAtar's), and seaborn imports pandas and scipy.stats:
about 1 s of every ``python -m ppo_jax...`` start (2-core AMD EPYC, medians
of 3: importing ppo_jax's gymnax adapter took 2.3 s against 3.3 s). ppo_jax
draws with matplotlib alone, so the name stands in ``sys.modules`` as a
placeholder module until someone reads one of its attributes; then the real
module is imported and the placeholder takes on all its attributes, so that a
name bound to either behaves the same.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class DeferredModule(types.ModuleType):
    """Stands in for a module until its first attribute is read."""

    def __getattr__(self, attribute: str) -> Any:
        # Only called for names the placeholder lacks: the first read of the
        # module's own attributes (the import system's __spec__ is set).
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        module = importlib.import_module(name)
        self.__dict__.update(module.__dict__)
        return getattr(module, attribute)


def defer_import(name: str) -> None:
    """Put a placeholder for top-level module ``name`` into ``sys.modules``.

    Nothing happens where the module is already imported or not installed
    (the first ``import name`` then fails as it would have).
    """
    if name in sys.modules or "." in name:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    placeholder = DeferredModule(name)
    placeholder.__spec__ = spec
    sys.modules[name] = placeholder
