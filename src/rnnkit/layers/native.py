"""The ``native`` backend: torch's fused kernels (cuDNN on a GPU, oneDNN/ATen on the CPU),
called exactly as ``torch.nn.RNN/LSTM/GRU`` call them."""

from __future__ import annotations

import torch
from torch import _VF, Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

_KERNELS = {"RNN_TANH": _VF.rnn_tanh, "RNN_RELU": _VF.rnn_relu, "LSTM": _VF.lstm, "GRU": _VF.gru}


def run_native(layer, x: Tensor, states: list[tuple[Tensor, ...]],
               params: list[dict[str, Tensor]], lengths: Tensor | None):
    """Run the whole stack of ``layer`` in one kernel call on time-major ``x`` (T, B, I).
    ``states`` and ``params`` hold one entry per layer and direction; returns
    (output (T, B, D*H), final states like ``states``)."""
    kernel = _KERNELS[layer.cells[0].native_mode]
    # torch's order; the kernel takes W_hr (proj_size) when h_0 is narrower than c_0
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    weights = [p[name] for p in params for name in names if name in p]
    hx = [torch.stack(s) for s in zip(*states)]
    flags = (layer.bias, layer.num_layers, layer.dropout, layer.training, layer.bidirectional)
    if lengths is None:
        out, *h_n = kernel(x, _state_arg(hx), weights, *flags, False)
    else:  # the kernel takes the batch sorted by decreasing length
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        hx = [h.index_select(1, packed.sorted_indices) for h in hx]
        data, *h_n = kernel(packed.data, packed.batch_sizes, _state_arg(hx), weights, *flags)
        out, _ = pad_packed_sequence(
            PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                           packed.unsorted_indices), total_length=x.shape[0])
        h_n = [h.index_select(1, packed.unsorted_indices) for h in h_n]
    return out, [tuple(h[i] for h in h_n) for i in range(len(states))]


def _state_arg(hx: list[Tensor]) -> Tensor | tuple[Tensor, ...]:
    """(h, c) as a tuple for the LSTM kernel, h alone for the others."""
    return tuple(hx) if len(hx) == 2 else hx[0]
