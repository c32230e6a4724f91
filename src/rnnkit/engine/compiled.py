"""The bptt loops compiled (``loops.cpp``): built on first use, then loaded from a cache.

The Python loops of ``engine/bptt.py`` cost a few microseconds of dispatch per op and run
~12 ops a step; at H = 128 that is most of a step on the CPU. ``loops.cpp`` runs the same steps
(the recurrent product, then each cell's elementwise step fused into one pass) with no Python in
between. It is built with torch's own extension builder (a C++ compiler and ninja; once per
machine and torch version, ~30 s, kept in torch's extension cache) and registered as
``torch.ops.rnnkit_loops``. Without a compiler, or with ``RNNKIT_COMPILED=0`` in the
environment, the engine runs its Python loops: the same numbers, only slower at small sizes.

Example:
    >>> from rnnkit.engine import compiled
    >>> with compiled.disabled():
    ...     compiled.ops() is None
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from ..cells import kernels
from ..cells.kernels import usable

SOURCE = Path(__file__).with_name("loops.cpp")
# -ffast-math and omp simd let the compiler vectorise exp and tanh (glibc's vector math,
# libmvec: a few ulp)
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]
LDFLAGS = ["-lmvec", "-fopenmp"]
_lock = threading.Lock()
_state: dict[str, object] = {"loaded": None, "off": False}


def _build() -> bool:
    from torch.utils.cpp_extension import load

    if not _cached():
        print("rnnkit: compiling the bptt loops (once per machine, ~30 s)...", file=sys.stderr)
    load("rnnkit_loops", [str(SOURCE)], extra_cflags=FLAGS, extra_ldflags=LDFLAGS,
         is_python_module=False, verbose=False)
    return hasattr(torch.ops.rnnkit_loops, "lstm_forward")


def _cached() -> bool:
    """Whether torch's extension cache seems to hold a build of this source (only to decide
    whether to announce the wait; torch itself decides whether to rebuild)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        built = Path(_get_build_directory("rnnkit_loops", False)) / "rnnkit_loops.so"
        return built.exists() and built.stat().st_mtime >= SOURCE.stat().st_mtime
    except Exception:  # a private helper of torch's: absent in some versions
        return False


def ops():
    """``torch.ops.rnnkit_loops``, built on the first call; None where it cannot be (no
    compiler: a warning once) or is switched off."""
    if _state["off"] or os.environ.get("RNNKIT_COMPILED", "1") == "0":
        return None
    if _state["loaded"] is None:
        with _lock:
            if _state["loaded"] is None:
                try:
                    _state["loaded"] = _build()
                except Exception as e:  # no compiler, no headers: the Python loops instead
                    warnings.warn(f"rnnkit: the compiled bptt loops could not be built ({e}); "
                                  "running the Python loops (same results, slower at small "
                                  "sizes). Install a C++ compiler and ninja to get them, or set "
                                  "RNNKIT_COMPILED=0 to silence this.", stacklevel=2)
                    _state["loaded"] = False
    return torch.ops.rnnkit_loops if _state["loaded"] else None


def loaded() -> object:
    """The ops if a call has already built or loaded them (and they are not switched off),
    else None: for helpers that should not start a build themselves."""
    if _state["off"] or not _state["loaded"] or os.environ.get("RNNKIT_COMPILED", "1") == "0":
        return None
    return torch.ops.rnnkit_loops


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the Python loops inside this block (tests compare the two)."""
    old, _state["off"] = _state["off"], True
    try:
        yield
    finally:
        _state["off"] = old


# the cells call their compiled loops through cells/kernels.py: tell it where they come from
kernels.provide(ops, loaded)
__all__ = ["disabled", "loaded", "ops", "usable"]
