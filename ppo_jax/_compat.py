"""Keep distrax importable on every jax the project declares (``>=0.10,<0.12``).

distrax imports tfp-nightly, whose JAX substrate reads
``jax.core.pytype_aval_mappings`` at import time. jax 0.10 deprecated that
public alias, and deprecated names are removed some releases later, while the
mapping itself stays in ``jax._src.core``. Should the public name be gone,
point it at that mapping so that ``import distrax`` still works; where it
exists (jax 0.10), nothing changes.
"""

from __future__ import annotations

import warnings

import jax


def _alias_pytype_aval_mappings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if hasattr(jax.core, "pytype_aval_mappings"):
            return
    from jax._src import core as jax_src_core

    jax.core.pytype_aval_mappings = jax_src_core.pytype_aval_mappings


_alias_pytype_aval_mappings()
