"""``Recurrent``: any cell, stacked and bidirectional, on any backend.

Parameters carry torch.nn's names (``weight_ih_l0``, ``bias_hh_l1_reverse`` ...) so weights
load either way between ``rnnkit.LSTM`` and ``torch.nn.LSTM``. Internally everything is
time-major (T, B, F); ``batch_first``, unbatched input and ``PackedSequence`` are converted at
the boundary (``forward``), so the engines see one layout.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import Cell, cell_class, make_cell
from ..engine import compiled, run_sequence
from ..engine.regularisers import Noise, draw
from ..engine.run import bptt_lacks, check_backend
from ..engine.tracing import compiling, exporting
from ..errors import UserError
from . import init as initializers
from .native import run_native

# auto: the hidden size from which bptt trains faster than torch's CPU kernel (float32)
# where auto takes bptt without the compiled loops (their Python fallback)
BPTT_FROM_HIDDEN = {"gru": 512, "rnn_tanh": 256}

FUSIONS = ("concat", "sum", "linear")
StateArg = Tensor | tuple[Tensor, ...] | None
States = list[tuple[Tensor, ...]]  # one state tuple per layer and direction


class Recurrent(nn.Module):
    """A recurrent layer stack for any cell in ``rnnkit.cells.available()``.

    The constructor and call follow ``torch.nn.RNN``/``LSTM``/``GRU``; the keywords after ``*``
    are rnnkit's own. ``proj_size`` (cell "lstm" only, as torch) projects h: r = W_hr h, which
    the next step and layer read and the layer outputs (h_0 and h_n are proj_size wide, c keeps
    hidden_size); backends "native" and "autograd" run it, "auto" picks native.

    - ``backend``: "auto", "native" (torch's fused kernels), "bptt" (hand-derived backward),
      "autograd" (the reference) or "scan" (parallel scan, for cells whose gates skip h(t-1)).
      "native" refuses options torch's kernels lack; "auto" then picks an own engine.
    - ``recurrent_dropout``: dropout per sequence on h(t-1) where it enters W_hh (Gal &
      Ghahramani 2016): z = W_ih x + W_hh (m * h(t-1)) + b, with m (B, H) drawn once a call per
      layer and direction, so each sequence drops its own units, the same at every step. The
      bptt loops run it (auto takes them; torch's kernels cannot).
    - ``weight_drop``: DropConnect on W_hh's columns (AWD-LSTM's weight drop): one mask per
      call, layer and direction, shared by the batch; it scales W_hh, so torch's kernels run it.
      (Until issue 16 this was what ``recurrent_dropout`` meant.)
    - ``zoneout``: per step and unit, a state keeps its old value with probability p (Krueger
      et al. 2016): h(t) = h~ + d (h(t-1) - h~), and c(t) likewise with its own d for the LSTM
      family (whose h~ = o tanh(c~) reads the un-zoned c~); in eval the expectation,
      h(t) = p h(t-1) + (1 - p) h~. A float, or (p_h, p_c). The compiled bptt loops run it for
      the LSTM and GRU; other cells run the autograd loop.
    - ``fusion``: how a bidirectional layer joins its directions: "concat" (torch's), "sum", or
      "linear" (W_f h_f + W_b h_b + b, deck 002; starts as the mean of the two).
    - ``tbptt``: truncated BPTT, the state is detached every ``tbptt`` steps (the forward is
      unchanged; unidirectional layers only, as a backward direction needs the whole sequence).
    - ``stateful``: carry the detached final state into the next call when no ``hx`` is given;
      ``reset_state()`` forgets it. A call with another batch size is an error until reset.
    - ``init``: "default" (torch's), "orthogonal", "identity" (IRNN), "chrono" (with memory
      spans up to ``chrono_tmax`` steps); ``forget_bias`` sets the forget-gate bias (the keep
      gate z for GRU-like cells).

    - ``recompute`` (the ``bptt`` engine): True keeps at most half the memory of the cell's
      autograd loop (for input_size <= hidden_size) and recomputes the rest in the backward,
      in one product over all steps. Each cell keeps what saves the most work within that:
      x and h (GRU, gru_cho, the Elman cells); x, c and the gates g, o (LSTM and its
      variants; o alone without a forget gate: h is rebuilt from o and c, i and f are
      recomputed); x, h and r, n (MUT1), n (MUT2) or z, n (MUT3); NAS keeps its 8
      pre-activations either way (its autograd loop keeps 4x as much).
      False keeps the activated gates too (2H-4H more floats a step, no second product:
      faster). None (the default): True when ``backend="bptt"`` was asked for by name, False
      when ``auto`` picked it (auto is after speed, and torch's kernels keep their gates too).
      Every cell but ``mingru`` and ``minlstm`` can keep them (the Elman cells keep
      everything anyway). With a C++ compiler the bptt loops of every cell but those two run
      compiled (``rnnkit.engine.compiled``).

    ``forward(input, hx=None, lengths=None)`` takes torch's arguments plus ``lengths`` (B,), the
    valid lengths of a padded batch: padded steps output zeros and the final state is each
    sequence's own last step, as with a ``PackedSequence``.

    Example:
        >>> import torch, rnnkit
        >>> rnn = rnnkit.Recurrent("lstm_peephole", 8, 16, num_layers=2, batch_first=True)
        >>> out, (h, c) = rnn(torch.randn(4, 10, 8), lengths=torch.tensor([10, 7, 3, 9]))
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
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        fusion: str = "concat",
        tbptt: int = 0,
        stateful: bool = False,
        init: str = "default",
        forget_bias: float | None = None,
        chrono_tmax: int = initializers.CHRONO_TMAX,
        recompute: bool | None = None,
    ) -> None:
        super().__init__()
        check_backend(cell_class(cell), backend)
        if recompute is False and not cell_class(cell).can_keep:
            raise UserError(f"recompute=False (keep the gates for the backward) is not "
                            f"implemented for cell {cell!r}, whose bptt backward has one way "
                            "to save them: use recompute=None (the default) or True")
        _check_options(input_size, hidden_size, num_layers, dropout, tbptt, fusion,
                       bidirectional)
        zoneout = _check_regularisers(cell, backend, recurrent_dropout, weight_drop, zoneout)
        _check_projection(cell, hidden_size, proj_size, backend)
        self.mode = cell  # the cell's name (torch.nn.RNNBase keeps its kernel's name here)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.backend, self.fusion = backend, fusion
        self.recurrent_dropout, self.weight_drop = float(recurrent_dropout), float(weight_drop)
        self.zoneout = zoneout  # (p_h, p_c) for a cell with c, (p_h,) else
        self.tbptt, self.stateful = tbptt, stateful
        self.init_scheme, self.forget_bias, self.chrono_tmax = init, forget_bias, chrono_tmax
        self.recompute = recompute
        self._carried: StateArg = None
        obstacles = self._native_obstacles(lengths=None)
        if backend == "native" and obstacles:
            raise ValueError(f"backend 'native' cannot run this layer: {obstacles[0]}; use "
                             "backend='auto' or 'bptt'")

        width = self.h_size  # of h, as the next step and layer read it (proj_size, if set)
        out_width = width * self.num_directions if fusion == "concat" else width
        factory = {"device": device, "dtype": dtype}
        self.cells: list[Cell] = []
        self._keeping_cells: list[Cell] = []  # the same cells with recompute=False
        for k in range(num_layers):
            layer_cell = make_cell(cell, input_size if k == 0 else out_width, hidden_size, bias)
            for name, rate in [("recurrent_dropout", recurrent_dropout),
                               ("weight_drop", weight_drop)]:
                if rate and "weight_hh" not in layer_cell.parameter_shapes():
                    raise UserError(f"{name} drops units of h(t-1) where they enter W_hh, but "
                                    f"cell {cell!r} has no W_hh (its gates do not read h(t-1)): "
                                    f"use {name}=0, or dropout= between layers, or zoneout=")
            self.cells.append(layer_cell)
            self._keeping_cells.append(dataclasses.replace(layer_cell, recompute=False)
                                       if layer_cell.can_keep else layer_cell)
            for sfx in self._suffixes():
                for name, shape in self._parameter_shapes(layer_cell).items():
                    self.register_parameter(f"{name}_l{k}{sfx}",
                                            nn.Parameter(torch.empty(shape, **factory)))
            if bidirectional and fusion == "linear":
                self.register_parameter(
                    f"fusion_weight_l{k}",
                    nn.Parameter(torch.empty(width, 2 * width, **factory)))
                self.register_parameter(
                    f"fusion_bias_l{k}", nn.Parameter(torch.empty(width, **factory)))
        self.reset_parameters()

    # ---- parameters ---------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def num_states(self) -> int:
        return self.cells[0].num_states

    @property
    def h_size(self) -> int:
        """The width of h per direction: ``proj_size`` with a projection, else ``hidden_size``
        (c keeps ``hidden_size``)."""
        return self.proj_size or self.hidden_size

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _parameter_shapes(self, cell: Cell) -> dict[str, tuple[int, ...]]:
        """The cell's parameter shapes, and with ``proj_size`` as torch.nn.LSTM's: W_hh reads
        r (gates*H, P) and W_hr (P, H) projects h, after the biases (torch's order)."""
        shapes = cell.parameter_shapes()
        if self.proj_size:
            shapes["weight_hh"] = (shapes["weight_hh"][0], self.proj_size)
            shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        return shapes

    def layer_params(self, layer: int, direction: int) -> dict[str, Tensor]:
        """The parameters of one layer and direction, by the cell's names (plus
        ``weight_hr`` with ``proj_size``)."""
        sfx = self._suffixes()[direction]
        names = self._parameter_shapes(self.cells[layer])
        return {name: getattr(self, f"{name}_l{layer}{sfx}") for name in names}

    def reset_parameters(self) -> None:
        """Initialise by ``init`` and ``forget_bias`` (see the class docstring)."""
        for k, cell in enumerate(self.cells):
            for d in range(self.num_directions):
                initializers.initialize(cell, self.layer_params(k, d), self.init_scheme,
                                        self.forget_bias, self.chrono_tmax)
            if self.bidirectional and self.fusion == "linear":
                w, b = getattr(self, f"fusion_weight_l{k}"), getattr(self, f"fusion_bias_l{k}")
                with torch.no_grad():  # start as the mean of the two directions
                    eye = torch.eye(self.h_size, device=w.device, dtype=w.dtype)
                    w.copy_(torch.cat([eye, eye], 1) / 2)
                    b.zero_()

    def flatten_parameters(self) -> None:
        """No-op, for code written for torch.nn.RNN (the weights are passed to the kernel as a
        list on every call)."""

    def extra_repr(self) -> str:
        s = f"{self.mode!r}, {self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for key, default in [("bias", True), ("batch_first", False), ("dropout", 0.0),
                             ("bidirectional", False), ("proj_size", 0), ("backend", "auto"),
                             ("recurrent_dropout", 0.0), ("weight_drop", 0.0),
                             ("zoneout", (0.0,) * self.num_states), ("fusion", "concat"),
                             ("tbptt", 0),
                             ("stateful", False), ("init_scheme", "default"),
                             ("forget_bias", None), ("recompute", None)]:
            value = getattr(self, key)
            if value != default:
                s += f", {key.removesuffix('_scheme')}={value!r}"
        return s

    def __setstate__(self, state: dict) -> None:
        if "zoneout" not in state:  # pickled before issue 16: recurrent_dropout was weight drop
            state = {**state, "weight_drop": state.get("recurrent_dropout", 0.0),
                     "recurrent_dropout": 0.0, "zoneout": (0.0,) * state["cells"][0].num_states}
        super().__setstate__(state)

    # ---- state ----------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the state carried between calls (``stateful=True``)."""
        self._carried = None

    def _initial_states(self, hx: StateArg, batched: bool, batch: int, like: Tensor) -> States:
        """The user's hx (or the carried state, or zeros) as one tuple per layer and direction,
        with torch's shape checks."""
        n = self.num_layers * self.num_directions
        if hx is None and self.stateful and self._carried is not None:
            carried = _as_tuple(self._carried)[0].shape[1]
            if carried != batch:
                raise ValueError(
                    f"this stateful layer carries a state for batch size {carried} but got a "
                    f"batch of {batch}: call reset_state() before a batch of another size, or "
                    "pass hx explicitly")
            hx = self._carried
        elif hx is not None:
            hx = self._check_hx(hx, batched, batch, n)
        if hx is None:
            zeros = like.new_zeros(n, batch, self.hidden_size)
            if self.proj_size:  # h: (B, P), c: (B, H)
                h0 = like.new_zeros(n, batch, self.proj_size)
                return [(h0[i], zeros[i]) for i in range(n)]
            return [(zeros[i],) * self.num_states for i in range(n)]
        return [tuple(t[i] for t in _as_tuple(hx)) for i in range(n)]

    def _check_hx(self, hx: StateArg, batched: bool, batch: int, n: int) -> StateArg:
        names = "(h_0, c_0)" if self.num_states == 2 else "h_0"
        parts = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
        if len(parts) != self.num_states or not all(isinstance(t, Tensor) for t in parts):
            given = f"a tuple of {len(parts)}" if isinstance(hx, (tuple, list)) else "one tensor"
            raise ValueError(f"cell {self.mode!r} takes hx={names}, got {given}: pass "
                             f"{'a tuple (h_0, c_0)' if self.num_states == 2 else 'one tensor'}")
        lead = (n, batch) if batched else (n,)
        for name, t in zip(("h_0", "c_0"), parts):
            size = "proj_size" if name == "h_0" and self.proj_size else "hidden_size"
            want = (*lead, self.h_size if size == "proj_size" else self.hidden_size)
            if tuple(t.shape) != want:
                layout = "" if batched else ", unbatched as the input"
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, expected {want} "
                    f"(num_layers * num_directions, {'batch, ' if batched else ''}"
                    f"{size}{layout})")
        parts = parts if batched else tuple(t.unsqueeze(1) for t in parts)
        return parts if self.num_states == 2 else parts[0]

    # ---- forward --------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: StateArg = None,
                lengths: Tensor | None = None):
        """Run the stack. ``input`` is (T, B, I) (batch_first: (B, T, I)), unbatched (T, I), or a
        ``PackedSequence``; ``lengths`` (B,) gives valid lengths of a padded batch. Returns
        ``(output, h_n)``, or ``(output, (h_n, c_n))`` for cells with a cell state, as torch."""
        if compiling() and self.backend != "autograd":
            # torch.compile runs torch.nn.LSTM eagerly behind a graph break (its kernels do not
            # lower to Inductor); so does this layer, with the eager engines and their speed
            return _eager_forward(self, input, hx, lengths)
        x, lengths, batched = self._time_major(input, lengths)
        T, B = x.shape[0], x.shape[1]
        states = self._initial_states(hx, batched, B, x)
        mask = None
        if lengths is not None:
            mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        backend = self.resolve_backend(x, lengths)
        params = [self._weight_dropped(self.layer_params(k, d))  # one mask per call
                  for k in range(self.num_layers) for d in range(self.num_directions)]
        noises = [self._noise(x) for _ in params]  # masks per layer and direction, per call
        out, final = self._run_chunks(x, states, params, mask, lengths, backend, noises)

        h_n = tuple(torch.stack(s) for s in zip(*final))
        if self.stateful:
            self._carried = _from_tuple(tuple(h.detach() for h in h_n))
        if isinstance(input, PackedSequence):
            out = _repack(out, lengths, input)
        elif not batched:
            out, h_n = out.squeeze(1), tuple(h.squeeze(1) for h in h_n)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, _from_tuple(h_n)

    def _time_major(self, input: Tensor | PackedSequence, lengths):
        """(x (T, B, I), checked lengths or None, whether the input had a batch dimension)."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("a PackedSequence carries its own lengths: pass lengths=None")
            x, lengths = pad_packed_sequence(input)  # original batch order
            batched = True
        elif not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        elif input.dim() not in (2, 3):
            raise ValueError(
                f"input must be 3-D ({'batch, seq' if self.batch_first else 'seq, batch'}, "
                f"features) or 2-D unbatched (seq, features), got {input.dim()}-D with shape "
                f"{tuple(input.shape)}")
        else:
            batched = input.dim() == 3
            x = input.transpose(0, 1) if batched and self.batch_first else input
            x = x if batched else x.unsqueeze(1)
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input has {x.shape[-1]} features (last dimension), but this layer was built "
                f"with input_size={self.input_size}: reshape the input or build the layer with "
                f"input_size={x.shape[-1]}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            what = "time steps" if x.shape[0] == 0 else "sequences in the batch"
            raise ValueError(f"input has no {what} (shape {tuple(input.shape)}): a recurrent "
                             "layer needs at least one step of at least one sequence")
        if lengths is not None:
            lengths = _checked_lengths(lengths, x.shape[1], x.shape[0], x.device)
        return x, lengths, batched

    def resolve_backend(self, x: Tensor, lengths: Tensor | None = None) -> str:
        """The backend a call on ``x`` uses: the requested one, or auto's choice (which may
        look at x's shape and device). Under torch.jit.trace, torch.export or ONNX export, auto
        takes one of the two paths those tools can record: torch's kernels or the step math."""
        obstacles = self._native_obstacles(lengths)
        recorded = exporting()
        if recorded and self.backend in ("bptt", "scan"):
            raise ValueError(f"backend {self.backend!r} cannot be traced or exported (its loop is "
                             "a hand-written autograd.Function over compiled code): use "
                             "backend='auto' or 'autograd'")
        if self.backend == "auto":
            if recorded or self.proj_size:  # (projections: torch's kernel or the step math)
                return "autograd" if obstacles else "native"
            if obstacles:
                if self._regularised():  # the bptt loops where they run them, else autograd
                    lacks = bptt_lacks(self.cells[0], *self._regularised(), x)
                    return "autograd" if lacks else "bptt"
                return "scan" if self.cells[0].parallel else "bptt"
            return "bptt" if self._bptt_beats_native(x) else "native"
        if self.backend == "native" and obstacles:
            raise ValueError(f"backend 'native' cannot run this call: {obstacles[0]}; use "
                             f"backend='auto' or {'autograd' if recorded else 'bptt'!r}")
        return self.backend

    def _bptt_beats_native(self, x: Tensor) -> bool:
        """Where rnnkit's own engine (keeping its gates, see ``recompute``) trains faster than
        torch's kernel, measured side by side on 2-core CPUs (BENCHMARKS.md). With its loops
        compiled (``engine/compiled.py``): the LSTM, GRU and Elman cells at every size measured
        (H = 128-1024: LSTM 1.0-1.3x nn.LSTM, GRU 1.3-2.3x, tanh RNN 1.6-2.5x). With the Python
        loops: GRU at H >= 512 and the tanh RNN at H >= 256. On a GPU cuDNN is the choice;
        without gradients, the kernel."""
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if not training or x.device.type != "cpu" or x.dtype != torch.float32:
            return False
        if self.cells[0].compiled_loop and compiled.usable(x):
            return True
        threshold = BPTT_FROM_HIDDEN.get(self.mode)
        return threshold is not None and self.hidden_size >= threshold

    def _native_obstacles(self, lengths: Tensor | None) -> list[str]:
        """Why torch's kernels cannot run this layer (and call), if they cannot."""
        cell = cell_class(self.mode)
        reasons = []
        if not cell.native_mode:
            reasons.append(f"torch has no fused kernel for cell {self.mode!r}")
        if self.bidirectional and self.fusion != "concat":
            reasons.append(f"torch joins directions by concat only, not fusion={self.fusion!r}")
        if self.tbptt and lengths is not None:
            reasons.append("tbptt together with lengths needs the rnnkit engines")
        if self.recurrent_dropout and self.training:
            reasons.append("torch's kernels have no recurrent dropout per sequence "
                           "(weight_drop= they run)")
        if any(self.zoneout):
            reasons.append("torch's kernels have no zoneout")
        return reasons

    def _regularised(self) -> tuple[bool, bool] | None:
        """(recurrent dropout, zoneout) where a call applies either, else None."""
        rd, zo = bool(self.training and self.recurrent_dropout), any(self.zoneout)
        return (rd, zo) if rd or zo else None

    def _noise(self, x: Tensor) -> Noise | None:
        """Fresh masks of recurrent dropout and zoneout for one layer and direction."""
        if not self._regularised():
            return None
        widths = (self.h_size, self.hidden_size)[: self.num_states]  # h (proj_size), c
        return draw(x.shape[0], x.shape[1], widths, x.detach(), self.recurrent_dropout,
                    self.zoneout, self.training)

    def _weight_dropped(self, p: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weight drop: W_hh with the columns of dropped units zeroed (and the kept ones
        scaled by 1/(1-p)), so the same units of h(t-1) are dropped at every step, for the
        whole batch."""
        if not (self.training and self.weight_drop > 0):
            return p
        w = p["weight_hh"]
        keep = torch.bernoulli(w.new_full((w.shape[1],), 1 - self.weight_drop))
        return {**p, "weight_hh": w * (keep / (1 - self.weight_drop))}

    def _run_chunks(self, x, states, params, mask, lengths, backend, noises):
        """Truncated BPTT: run ``tbptt`` steps at a time, detaching the state between chunks
        (the final state keeps the last chunk's graph, so a loss on it still trains)."""
        k = self.tbptt
        if not k or k >= x.shape[0]:
            return self._run_stack(x, states, params, mask, lengths, backend, noises)
        outs = []
        for start in range(0, x.shape[0], k):
            if start:
                states = [tuple(s.detach() for s in st) for st in states]
            chunk_mask = None if mask is None else mask[start:start + k]
            chunk_len = None if lengths is None else (lengths - start).clamp(0, k)
            chunk_noises = [n if n is None else n.steps(start, start + k) for n in noises]
            out, states = self._run_stack(x[start:start + k], states, params, chunk_mask,
                                          chunk_len, backend, chunk_noises)
            outs.append(out)
        return torch.cat(outs), states

    def _run_stack(self, x, states, params, mask, lengths, backend, noises):
        if backend == "native":
            return run_native(self, x, states, params, lengths)
        D, final = self.num_directions, []
        keep = self.recompute is False or (self.recompute is None and self.backend == "auto")
        for k, cell in enumerate(self._keeping_cells if keep else self.cells):
            outs = []
            for d in range(D):
                out, st = self._run_direction(cell, x, states[k * D + d], params[k * D + d],
                                              mask, lengths, backend, noises[k * D + d],
                                              reverse=d == 1)
                outs.append(out)
                final.append(st)
            x = self._fuse(k, outs)
            if mask is not None:
                x = x * mask.unsqueeze(-1).to(x.dtype)  # padded steps output zeros, as torch's
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, final

    def _run_direction(self, cell, x, state, p, mask, lengths, backend, noise, reverse):
        if self.proj_size:  # the autograd engine, over the step with h projected
            cell = _Projected(cell)
        if not reverse:
            return run_sequence(cell, x, state, p, backend, mask, noise)
        idx = _reverse_index(x.shape[0], x.shape[1], lengths, x.device).unsqueeze(-1)
        out, st = run_sequence(cell, x.gather(0, idx.expand_as(x)), state, p, backend, mask,
                               noise)
        return out.gather(0, idx.expand_as(out)), st

    def _fuse(self, k: int, outs: list[Tensor]) -> Tensor:
        if len(outs) == 1:
            return outs[0]
        if self.fusion == "concat":
            return torch.cat(outs, -1)
        if self.fusion == "sum":
            return outs[0] + outs[1]
        w, b = getattr(self, f"fusion_weight_l{k}"), getattr(self, f"fusion_bias_l{k}")
        return F.linear(torch.cat(outs, -1), w, b)


def _outside_graph(fn):
    """``fn`` run eagerly behind a graph break of torch.compile, saying why where torch can."""
    reason = ("rnnkit's recurrent engines run eagerly under torch.compile, as torch.nn.LSTM's "
              "kernels do; for one graph (fullgraph=True) build the layer with "
              "backend='autograd'")
    try:
        return torch.compiler.disable(fn, reason=reason)
    except TypeError:  # torch < 2.7 takes no reason
        return torch.compiler.disable(fn)


_eager_forward = _outside_graph(Recurrent.forward)  # see Recurrent.forward


class _Projected:
    """An LSTM step with a projection (Sak et al. 2014; torch.nn.LSTM's ``proj_size``): the
    cell's step reads r(t-1) through W_hh (gates*H x P) and returns r(t) = W_hr h(t), where
    h(t) = o * tanh(c(t)); the next step and the next layer read r(t). For the autograd engine,
    which calls ``input_projection`` and ``step`` only."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    def input_projection(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        return self.cell.input_projection(x, p)

    def step(self, xp: Tensor, state: tuple[Tensor, ...], p: dict[str, Tensor]):
        h, c = self.cell.step(xp, state, p)
        return h @ p["weight_hr"].t(), c


def _check_projection(cell: str, hidden_size: int, proj_size, backend: str) -> None:
    """torch.nn.LSTM's rules for ``proj_size``, and the backends that run it."""
    if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
        raise ValueError(f"proj_size must be an integer >= 0 (0: no projection), "
                         f"got {proj_size!r}")
    if not proj_size:
        return
    if cell != "lstm":
        raise ValueError(f"proj_size (a projection of h, as torch.nn.LSTM's) is supported for "
                         f"cell 'lstm' only, not {cell!r}: use proj_size=0 or cell='lstm'")
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size="
                         f"{proj_size} and hidden_size={hidden_size}")
    if backend in ("bptt", "scan"):
        raise ValueError(f"backend {backend!r} cannot run proj_size (LSTM projections): use "
                         "backend='auto' or 'autograd' (or 'native')")


def _check_regularisers(cell: str, backend: str, recurrent_dropout: float, weight_drop: float,
                        zoneout) -> tuple[float, ...]:
    """Check the rates (and that a backend named runs them); zoneout as one rate per state."""
    for name, v in [("recurrent_dropout", recurrent_dropout), ("weight_drop", weight_drop)]:
        if not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v!r}")
    n = cell_class(cell).num_states
    rates = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout,) * n
    if len(rates) != n or not all(isinstance(r, (int, float)) and 0 <= r < 1 for r in rates):
        form = "a float or (p_h, p_c)" if n == 2 else "a float"
        raise ValueError(f"zoneout must be {form}, each in [0, 1), got {zoneout!r}")
    rd, zo = bool(recurrent_dropout), any(rates)
    if backend == "scan" and zo:
        raise UserError("backend 'scan' runs no zoneout (its steps are not sequential): use "
                        "backend='auto' or 'autograd'")
    if backend == "bptt" and (rd or zo):
        lacks = bptt_lacks(cell_class(cell), rd, zo)
        if lacks:
            raise UserError(f"{lacks}: use backend='auto' (it runs the autograd loop for this "
                            "cell) or 'autograd'")
    return tuple(float(r) for r in rates)


def _check_options(input_size, hidden_size, num_layers, dropout, tbptt, fusion,
                   bidirectional) -> None:
    for name, v in [("input_size", input_size), ("hidden_size", hidden_size),
                    ("num_layers", num_layers)]:
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")
    if not isinstance(tbptt, int) or tbptt < 0:
        raise ValueError(f"tbptt must be a number of steps >= 0 (0: off), got {tbptt!r}")
    if tbptt and bidirectional:
        raise ValueError("tbptt (truncated BPTT) runs forward in time chunk by chunk, but a "
                         "bidirectional layer reads the whole sequence backwards: use tbptt=0 or "
                         "bidirectional=False")
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}: choose one of {', '.join(FUSIONS)}")


def _checked_lengths(lengths, batch: int, steps: int, device) -> Tensor:
    lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers (a LongTensor or list of ints), "
                         f"got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one per sequence in the batch, "
                         f"got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
        raise ValueError(f"lengths must lie in 1..{steps} (the padded length), "
                         f"got {lengths.tolist()}")
    return lengths.to(device=device, dtype=torch.long)


def _as_tuple(state: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _from_tuple(state: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """h, or (h, c): the way torch returns and takes states."""
    return state if len(state) > 1 else state[0]


def _reverse_index(T: int, B: int, lengths: Tensor | None, device) -> Tensor:
    """idx[t, b]: the step read at t when sequence b is reversed within its own length."""
    t = torch.arange(T, device=device).unsqueeze(1).expand(T, B)
    if lengths is None:
        return T - 1 - t
    L = lengths.unsqueeze(0)
    return torch.where(t < L, L - 1 - t, t)


def _repack(out: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack ``out`` (T, B, F, original order) with the same order as the input ``like``."""
    order = like.sorted_indices
    if order is not None:
        out, lengths = out.index_select(1, order), lengths[order]
    data = pack_padded_sequence(out, lengths.cpu(), enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)

