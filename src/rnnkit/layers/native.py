"""The ``native`` backend: torch's fused kernels (cuDNN on a GPU, oneDNN/ATen on the CPU),
called exactly as ``torch.nn.RNN/LSTM/GRU`` call them."""

from __future__ import annotations

import torch
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

_KERNELS = {"RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu, "LSTM": _VF.lstm, "GRU": _VF.gru}


def run_native(layer, x: Tensor, states: list[tuple[Tensor, ...]],
               params: list[dict[str, Tensor]], lengths: Tensor | None):
    """Run the whole stack of ``layer`` in one kernel call. ``states`` and ``params`` hold one
    entry per layer and direction; returns (output (T, B, D*H), final states like ``states``)."""
    cell = layer.cells[0]
    kernel = _KERNELS[cell.native_mode]
    weights = [p[name] for p in params for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
               if name in p]
    hx = tuple(torch.stack(s) for s in zip(*states))
    hx_arg = hx if cell.num_states == 2 else hx[0]
    flags = (layer.bias, layer.num_layers, layer.dropout, layer.training, layer.bidirectional)
    if lengths is None:
        result = kernel(x, hx_arg, weights, *flags, False)
        out, h_n = result[0], result[1:]
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        order = packed.sorted_indices
        hx_sorted = tuple(h.index_select(1, order) for h in hx)
        hx_arg = hx_sorted if cell.num_states == 2 else hx_sorted[0]
        result = kernel(packed.data, packed.batch_sizes, hx_arg, weights, *flags)
        out_packed = PackedSequence(result[0], packed.batch_sizes, order, packed.unsorted_indices)
        out, _ = pad_packed_sequence(out_packed, total_length=x.shape[0])
        h_n = tuple(h.index_select(1, packed.unsorted_indices) for h in result[1:])
    final = [tuple(h[i] for h in h_n) for i in range(h_n[0].shape[0])]
    return out, final
