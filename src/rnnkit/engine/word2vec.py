"""word2vec's compiled inner loop (``word2vec.cpp``): built on first use, then loaded from cache.

Why compiled: word2vec makes millions of tiny updates (one 100-number dot product and two
axpys per word pair, about 30 M pairs an epoch of the Wikipedia extract); the Trainer's
per-batch Python step costs microseconds per op, far more than the update itself. So a
Trainer step hands a whole chunk of sentences to ``train_chunk``, which runs Mikolov's SGD
loop over it in Hogwild threads, as word2vec.c and gensim do. Built like the bptt loops
(``engine/compiled.py``: torch's extension builder, a C++ compiler and ninja, ~20 s once);
without a compiler, or with ``RNNKIT_COMPILED=0``, the vectorised PyTorch path
(``models.word2vec.sgns_step``) trains instead: the same math in batches.

Example:
    >>> from rnnkit.engine import word2vec
    >>> import os; os.environ["RNNKIT_COMPILED"] = "0"
    >>> word2vec.ops() is None
    True
    >>> del os.environ["RNNKIT_COMPILED"]
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

import torch

from .compiled import FLAGS

SOURCE = Path(__file__).with_name("word2vec.cpp")
NAME = "rnnkit_word2vec"
_lock = threading.Lock()
_state: dict[str, object] = {"loaded": None}


def _build() -> bool:
    from torch.utils.cpp_extension import load

    if not _cached():
        print("rnnkit: compiling word2vec's loop (once per machine, ~20 s)...", file=sys.stderr,
              flush=True)
    load(NAME, [str(SOURCE)], extra_cflags=FLAGS, is_python_module=False, verbose=False)
    return hasattr(torch.ops.rnnkit_word2vec, "train_chunk")


def _cached() -> bool:
    """Whether torch's extension cache seems to hold a build of this source (only to decide
    whether to announce the wait)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        built = Path(_get_build_directory(NAME, False)) / f"{NAME}.so"
        return built.exists() and built.stat().st_mtime >= SOURCE.stat().st_mtime
    except Exception:  # a private helper of torch's
        return False


def ops():
    """``torch.ops.rnnkit_word2vec``, built on the first call; None where it cannot be (no
    compiler: a warning once) or ``RNNKIT_COMPILED=0`` switches it off."""
    if os.environ.get("RNNKIT_COMPILED", "1") == "0":
        return None
    if _state["loaded"] is None:
        with _lock:
            if _state["loaded"] is None:
                try:
                    _state["loaded"] = _build()
                except Exception as e:  # no compiler, no headers: the PyTorch path instead
                    warnings.warn(f"rnnkit: word2vec's compiled loop could not be built ({e}); "
                                  "training with the vectorised PyTorch path (slower on the "
                                  "CPU). Install a C++ compiler and ninja to get it.",
                                  stacklevel=2)
                    _state["loaded"] = False
    return torch.ops.rnnkit_word2vec if _state["loaded"] else None
