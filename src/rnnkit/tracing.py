"""Whether a tool is recording the ops instead of running them.

rnnkit's own engines run code those tools cannot follow: the bptt loops are compiled C++ and a
hand-written ``autograd.Function``, and the products call oneDNN ops Inductor cannot lower and
ONNX has no operator for. So:

* ``exporting()``: ``torch.jit.trace``, ``torch.export`` and the two ONNX exporters built on
  them record one whole graph. ``auto`` then takes torch's kernels or the cell's step math.
* ``compiling()``: ``torch.compile`` (Dynamo, not an export) can break the graph, and runs a
  layer eagerly behind a graph break, as it runs ``torch.nn.LSTM``: the eager engines stay.
* ``tracing()``: either; the products take plain ``torch`` ops.

Example:
    >>> from rnnkit import tracing
    >>> tracing.tracing(), tracing.exporting(), tracing.compiling()
    (False, False, False)
"""

from __future__ import annotations

import torch


def exporting() -> bool:
    """Under ``torch.jit.trace``, ``torch.export`` or an ONNX exporter (the TorchScript one
    traces with ``torch.jit``, the dynamo one exports with ``torch.export``)."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def compiling() -> bool:
    """Under ``torch.compile``'s Dynamo, not exporting."""
    return torch.compiler.is_compiling() and not torch.compiler.is_exporting()


def tracing() -> bool:
    """Under any of them (cheap: called for every product of the engines' loops)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()
