"""``Recurrent``: any cell, stacked and bidirectional, on any backend.

Parameters carry torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse`` ...) so weights
load either way between ``rnnkit.LSTM`` and ``torch.nn.LSTM``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import Cell, cell_class, make_cell
from ..engine import run_sequence
from ..engine.run import check_backend
from . import init as initializers
from .native import run_native

FUSIONS = ("concat", "sum", "linear")
StateArg = Tensor | tuple[Tensor, ...] | None


class Recurrent(nn.Module):
    """A recurrent layer stack for any cell in ``rnnkit.cells.available()``.

    The constructor and call follow ``torch.nn.RNN``/``LSTM``/``GRU``; the keywords after ``*``
    are rnnkit's own:

    - ``backend``: "auto", "native" (torch's fused kernels), "bptt" (hand-derived backward),
      "autograd" (the reference) or "scan" (parallel scan, for cells whose gates skip h(t-1)).
    - ``recurrent_dropout``: variational dropout on h(t-1) where it enters W_hh: the same units
      are dropped at every step (one mask per call, shared by the batch), so it works on every
      backend, torch's kernels included.
    - ``fusion``: how a bidirectional layer joins its directions: "concat" (torch's), "sum", or
      "linear" (W_f h_f + W_b h_b + b, deck 002).
    - ``tbptt``: truncated BPTT, the state is detached every ``tbptt`` steps.
    - ``stateful``: carry the final state into the next call (detached); ``reset_state()``.
    - ``init``: "default" (torch's), "orthogonal", "identity" (IRNN), "chrono";
      ``forget_bias`` sets the forget-gate bias (keep gate for GRU-like cells).

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.Recurrent("lstm_peephole", 8, 16, num_layers=2, batch_first=True)
        >>> out, (h, c) = rnn(torch.randn(4, 10, 8))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 16]), torch.Size([2, 4, 16]))
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        fusion: str = "concat",
        tbptt: int = 0,
        stateful: bool = False,
        init: str = "default",
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        cls = cell_class(cell)
        check_backend(cls, backend)
        _check_sizes(input_size, hidden_size, num_layers, dropout, recurrent_dropout, tbptt)
        if proj_size:
            raise NotImplementedError(
                "proj_size is not supported yet: use proj_size=0, or torch.nn.LSTM for projections"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}: choose one of {', '.join(FUSIONS)}")
        self.mode = cell
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, 0
        self.backend, self.recurrent_dropout, self.fusion = backend, recurrent_dropout, fusion
        self.tbptt, self.stateful = tbptt, stateful
        self.init_scheme, self.forget_bias = init, forget_bias
        self._carried: StateArg = None
        D = 2 if bidirectional else 1
        out_width = hidden_size * D if fusion == "concat" else hidden_size
        factory = {"device": device, "dtype": dtype}
        self.cells: list[Cell] = []
        for k in range(num_layers):
            layer_cell = make_cell(cell, input_size if k == 0 else out_width, hidden_size, bias)
            self.cells.append(layer_cell)
            for sfx in self._suffixes():
                for name, shape in layer_cell.parameter_shapes().items():
                    self.register_parameter(
                        f"{name}_l{k}{sfx}", nn.Parameter(torch.empty(shape, **factory))
                    )
            if bidirectional and fusion == "linear":
                self.register_parameter(
                    f"fusion_weight_l{k}", nn.Parameter(torch.empty(hidden_size, 2 * hidden_size,
                                                                    **factory)))
                self.register_parameter(
                    f"fusion_bias_l{k}", nn.Parameter(torch.empty(hidden_size, **factory)))
        self.reset_parameters()

    # ---- parameters ---------------------------------------------------------------------
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def layer_params(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The parameters of one layer and direction, by the cell's names."""
        sfx = self._suffixes()[direction]
        names = self.cells[layer].parameter_shapes()
        return {name: getattr(self, f"{name}_l{layer}{sfx}") for name in names}

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def num_states(self) -> int:
        return self.cells[0].num_states

    def reset_parameters(self) -> None:
        """Initialise by ``init`` and ``forget_bias`` (see the class docstring)."""
        for k, cell in enumerate(self.cells):
            for d in range(self.num_directions):
                initializers.initialize(cell, self.layer_params(k, d), self.init_scheme,
                                        self.forget_bias)
            if self.bidirectional and self.fusion == "linear":
                w, b = getattr(self, f"fusion_weight_l{k}"), getattr(self, f"fusion_bias_l{k}")
                with torch.no_grad():  # start as the mean of the two directions
                    w.copy_(torch.cat([torch.eye(self.hidden_size)] * 2, 1) / 2)
                    b.zero_()

    def extra_repr(self) -> str:
        s = f"{self.mode!r}, {self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for key, default in [("bias", True), ("batch_first", False), ("dropout", 0.0),
                             ("bidirectional", False), ("backend", "auto"),
                             ("recurrent_dropout", 0.0), ("fusion", "concat"), ("tbptt", 0),
                             ("stateful", False), ("init", "default")]:
            value = getattr(self, "init_scheme" if key == "init" else key)
            if value != default:
                s += f", {key}={value!r}"
        return s

    # ---- state ----------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the state carried between calls (``stateful=True``)."""
        self._carried = None

    def _pack_state(self, states: list[tuple[Tensor, ...]]) -> Tensor | tuple[Tensor, ...]:
        stacked = tuple(torch.stack(s) for s in zip(*states))
        return stacked if len(stacked) > 1 else stacked[0]

    def _unpack_state(self, hx: StateArg, batch: int, x: Tensor) -> list[tuple[Tensor, ...]]:
        """(L*D, B, H) tensors -> one state tuple per layer and direction, with shape checks."""
        n = self.num_layers * self.num_directions
        if hx is None:
            zeros = x.new_zeros(n, batch, self.hidden_size)
            return [tuple(zeros[i] for _ in range(self.num_states)) for i in range(n)]
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        if len(parts) != self.num_states:
            raise ValueError(
                f"cell {self.mode!r} takes a state of {self.num_states} tensor(s) "
                f"({'(h_0, c_0)' if self.num_states == 2 else 'h_0'}), got {len(parts)}"
            )
        want = (n, batch, self.hidden_size)
        for name, t in zip(("h_0", "c_0"), parts):
            if tuple(t.shape) != want:
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, expected {want} "
                    "(num_layers * num_directions, batch, hidden_size)"
                )
        return [tuple(t[i] for t in parts) for i in range(n)]

    # ---- forward --------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: StateArg = None,
                lengths: Tensor | None = None):
        """Run the stack. ``input`` is (T, B, I) (batch_first: (B, T, I)), unbatched (T, I), or a
        ``PackedSequence``; ``lengths`` (B,) gives valid lengths of a padded batch. Returns
        ``(output, h_n)``, or ``(output, (h_n, c_n))`` for cells with a cell state, as torch."""
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            x, lengths = pad_packed_sequence(packed)  # original batch order
            batched = True
        else:
            x, batched = self._check_input(input)
            if self.batch_first:
                x = x.transpose(0, 1)
        if hx is not None and not batched:
            hx = tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, (tuple, list)) \
                else hx.unsqueeze(1)
        T, B = x.shape[0], x.shape[1]
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input has {x.shape[-1]} features, this layer expects input_size="
                f"{self.input_size}"
            )
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            _check_lengths(lengths, B, T)
            mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        if hx is None and self.stateful and self._carried is not None:
            hx = self._carried if _state_batch(self._carried) == B else None
        states = self._unpack_state(hx, B, x)
        backend = self.resolve_backend(x, lengths)
        out, final = self._run_chunks(x, states, mask, lengths, backend)
        h_n = self._pack_state(final)
        if self.stateful:
            self._carried = tuple(h.detach() for h in h_n) if isinstance(h_n, tuple) \
                else h_n.detach()
        if packed is not None:
            out = _repack(out, lengths, packed)
        else:
            if self.batch_first:
                out = out.transpose(0, 1)
            if not batched:
                out = out.squeeze(1)
                h_n = tuple(h.squeeze(1) for h in h_n) if isinstance(h_n, tuple) \
                    else h_n.squeeze(1)
        return out, h_n

    def _check_input(self, input: Tensor) -> tuple[Tensor, bool]:
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(
                f"input must be 3-D (seq, batch, features) or 2-D unbatched (seq, features), "
                f"got {input.dim()}-D with shape {tuple(input.shape)}"
            )
        if input.dim() == 2:
            return input.unsqueeze(1), False
        return input, True

    def resolve_backend(self, x: Tensor, lengths: Tensor | None = None) -> str:
        """The backend this call will use: the requested one, or auto's choice."""
        cell = self.cells[0]
        reasons = self._native_obstacles(lengths)
        if self.backend == "auto":
            if cell.native_mode and not reasons:
                return "native"
            return "scan" if cell.parallel else "bptt"
        if self.backend == "native" and reasons:
            raise ValueError(
                f"backend 'native' cannot run this layer: {reasons[0]}; use backend='bptt' "
                "or 'auto'"
            )
        return self.backend

    def _native_obstacles(self, lengths: Tensor | None) -> list[str]:
        reasons = []
        if not self.cells[0].native_mode:
            reasons.append(f"torch has no fused kernel for cell {self.mode!r}")
        if self.bidirectional and self.fusion != "concat":
            reasons.append(f"torch joins directions by concat only, not {self.fusion!r}")
        if self.tbptt and lengths is not None:
            reasons.append("tbptt together with lengths needs the rnnkit engines")
        return reasons

    def _run_chunks(self, x, states, mask, lengths, backend):
        """Truncated BPTT: run ``tbptt`` steps at a time, detaching the state in between."""
        if not self.tbptt or self.tbptt >= x.shape[0]:
            return self._run_stack(x, states, mask, lengths, backend)
        outs = []
        for start in range(0, x.shape[0], self.tbptt):
            end = start + self.tbptt
            chunk_mask = None if mask is None else mask[start:end]
            chunk_len = None if lengths is None else (lengths - start).clamp(0, self.tbptt)
            out, states = self._run_stack(x[start:end], states, chunk_mask, chunk_len, backend)
            states = [tuple(s.detach() for s in st) for st in states]
            outs.append(out)
        return torch.cat(outs), states

    def _recurrent_dropped(self, p: dict[str, Tensor]) -> dict[str, Tensor]:
        """Variational recurrent dropout: drop the same units of h(t-1) at every step."""
        if not (self.training and self.recurrent_dropout > 0):
            return p
        w = p["weight_hh"]
        keep = torch.bernoulli(w.new_full((w.shape[1],), 1 - self.recurrent_dropout))
        return {**p, "weight_hh": w * (keep / (1 - self.recurrent_dropout))}

    def _run_stack(self, x, states, mask, lengths, backend):
        if backend == "native":
            params = [self._recurrent_dropped(self.layer_params(k, d))
                      for k in range(self.num_layers) for d in range(self.num_directions)]
            return run_native(self, x, states, params, lengths)
        final = []
        D = self.num_directions
        for k, cell in enumerate(self.cells):
            outs = []
            for d in range(D):
                p = self._recurrent_dropped(self.layer_params(k, d))
                out, st = self._run_direction(cell, x, states[k * D + d], p, mask, lengths,
                                              backend, reverse=d == 1)
                outs.append(out)
                final.append(st)
            x = self._fuse(k, outs)
            if mask is not None:
                x = x * mask.unsqueeze(-1).to(x.dtype)  # padded steps output zeros, as torch's
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, final

    def _run_direction(self, cell, x, state, p, mask, lengths, backend, reverse):
        if not reverse:
            return run_sequence(cell, x, state, p, backend, mask)
        idx = _reverse_index(x.shape[0], x.shape[1], lengths, x.device)
        x_rev = x.gather(0, idx.unsqueeze(-1).expand_as(x))
        out, st = run_sequence(cell, x_rev, state, p, backend, mask)
        return out.gather(0, idx.unsqueeze(-1).expand_as(out)), st

    def _fuse(self, k: int, outs: list[Tensor]) -> Tensor:
        if len(outs) == 1:
            return outs[0]
        if self.fusion == "concat":
            return torch.cat(outs, -1)
        if self.fusion == "sum":
            return outs[0] + outs[1]
        w, b = getattr(self, f"fusion_weight_l{k}"), getattr(self, f"fusion_bias_l{k}")
        return F.linear(torch.cat(outs, -1), w, b)


def _check_sizes(input_size, hidden_size, num_layers, dropout, recurrent_dropout, tbptt) -> None:
    for name, v in [("input_size", input_size), ("hidden_size", hidden_size),
                    ("num_layers", num_layers)]:
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    for name, v in [("dropout", dropout), ("recurrent_dropout", recurrent_dropout)]:
        if not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v!r}")
    if not isinstance(tbptt, int) or tbptt < 0:
        raise ValueError(f"tbptt must be a number of steps >= 0 (0: off), got {tbptt!r}")


def _check_lengths(lengths: Tensor, batch: int, steps: int) -> None:
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one per sequence, "
                         f"got {tuple(lengths.shape)}")
    if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise ValueError(f"lengths must lie in 1..{steps} (the padded length), "
                         f"got {lengths.tolist()}")


def _state_batch(state: StateArg) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


def _reverse_index(T: int, B: int, lengths: Tensor | None, device) -> Tensor:
    """idx[t, b]: the step read at t when sequence b is reversed within its own length."""
    t = torch.arange(T, device=device).unsqueeze(1).expand(T, B)
    if lengths is None:
        return T - 1 - t
    L = lengths.to(device).unsqueeze(0)
    return torch.where(t < L, L - 1 - t, t)


def _repack(out: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack ``out`` (T, B, F, original order) with the same order as the input ``like``."""
    order = like.sorted_indices
    if order is None:
        data = pack_padded_sequence(out, lengths.cpu(), enforce_sorted=True).data
    else:
        data = pack_padded_sequence(out.index_select(1, order), lengths[order].cpu(),
                                    enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
