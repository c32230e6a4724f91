"""What every cell family provides: the equations of one time step, and their backward.

A cell is stateless math. The layer owns the parameters (named as in ``torch.nn``:
``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` plus any extras) and hands them to
the cell as a dict. The engine runs the cell over time:

* ``input_projection`` maps the whole input sequence at once (one matmul for all steps);
* ``step`` is the forward equation of one step, differentiated by autograd (the reference);
* ``forward_step`` / ``backward_step`` are the same step and its hand-derived backward,
  used by the ``bptt`` engine. ``backward_step`` returns the gradient of the input projection
  ``dxp``, of the recurrent pre-activations ``dhp`` (whose weight gradient the engine forms in
  one matmul after the loop), of the previous state, and of any extra recurrent parameters.

A cell of your own needs only ``name``, ``gates``, ``num_states`` and ``step`` (autograd) or
``forward_step`` / ``backward_step`` (also bptt): the contract is in ``user.py``; the buffered
and compiled methods below are optional speed-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..tracing import tracing
from . import kernels
from .matmul import linear, pack, project, weight_grad

State = tuple[Tensor, ...]
Params = dict[str, Tensor]
# Recurrent dropout per sequence (Gal & Ghahramani 2016): under this key of the parameters (the
# autograd engine) or of ``bptt_setup``'s dict (the bptt loops), the (B, H) mask m, 0 or
# 1/(1-p), that h(t-1) is multiplied by where it enters W_hh (``dropped``)
RECURRENT_MASK = "recurrent_mask"
# W_hh in oneDNN's blocked layout (``matmul.pack``), for ``recurrent`` in the bptt engine's loop
PACKED_WEIGHT_HH = "packed_weight_hh"


@dataclass
class Cell:
    """Base class: sizes plus the step equations of one cell family.

    Example:
        >>> from rnnkit.cells import make_cell
        >>> cell = make_cell("rnn_tanh", input_size=3, hidden_size=4)
        >>> cell.gates, cell.num_states
        (1, 1)
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    # bptt: keep at most half of what the cell's autograd loop keeps and recompute the rest of
    # the gates in the backward (memory); False keeps them all where the cell can (no second
    # product, 2H-4H more floats a step)
    recompute: bool = True

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line for `rnnkit cells` (else the docstring's)
    gates: ClassVar[int] = 1  # rows of weight_ih / weight_hh, in units of hidden_size
    gate_names: ClassVar[tuple[str, ...]] = ("a",)  # the row blocks of weight_ih, in order
    # (gate, +1 if a high value keeps the old state / -1 if it overwrites): forget_bias, chrono
    keep_gates: ClassVar[tuple[tuple[str, float], ...]] = (("f", 1.0), ("z", 1.0))
    num_states: ClassVar[int] = 1  # 1: h;  2: (h, c)
    native_mode: ClassVar[str | None] = None  # torch's fused kernel for this cell, if any
    parallel: ClassVar[bool] = False  # gates do not read h(t-1): the scan engine applies
    recurrent_extras: ClassVar[tuple[str, ...]] = ()  # extra parameters used inside the loop
    input_extras: ClassVar[tuple[str, ...]] = ()  # extra parameters used by input_projection
    backward_reads_xp: ClassVar[bool] = True  # buffered bptt: recompute W_ih x for the backward
    saves_h: ClassVar[bool] = True  # buffered bptt: the engine keeps h (else hidden_states)
    compiled_loop: ClassVar[bool] = False  # engine/loops.cpp has this cell's two loops
    # the regularisers this cell's buffered bptt loops apply: "recurrent_dropout" (Python and
    # compiled loops), "zoneout" (the compiled loops); elsewhere the layer runs autograd
    bptt_regularisers: ClassVar[tuple[str, ...]] = ()
    can_keep: ClassVar[bool] = False  # bptt honours recompute=False (keeps what it would redo)

    # ---- parameters -----------------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of this cell's parameters for one layer and direction (torch names)."""
        H, I, G = self.hidden_size, self.input_size, self.gates
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        shapes.update(self.extra_shapes())
        return shapes

    def extra_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def reset_parameters(self, params: Params) -> None:
        """torch.nn's default: every parameter uniform in +-1/sqrt(hidden_size)."""
        bound = self.hidden_size**-0.5
        with torch.no_grad():
            for p in params.values():
                p.uniform_(-bound, bound)

    @property
    def xp_size(self) -> int:
        """Width of the input projection, per step."""
        return self.gates * self.hidden_size

    # ---- forward math -------------------------------------------------------------------
    def input_projection(self, x: Tensor, p: Params) -> Tensor:
        """W_ih x(t) + b_ih for every step at once: (T, B, I) -> (T, B, xp_size)."""
        return project(x, p["weight_ih"], p.get("bias_ih"))

    def dropped(self, h: Tensor, p: Params) -> Tensor:
        """h(t-1) as W_hh reads it: m * h(t-1) under recurrent dropout (``RECURRENT_MASK``)."""
        m = p.get(RECURRENT_MASK)
        return h if m is None else h * m

    def recurrent(self, h: Tensor, p: Params) -> Tensor:
        """W_hh h(t-1) + b_hh: the part of the pre-activation that reads the state."""
        h = self.dropped(h, p)
        b, w = p.get("bias_hh"), p["weight_hh"]
        # inside the bptt engine: the faster product, with W_hh packed once for the loop where
        # the engine did so (a tracer records one graph either way)
        if not torch.is_grad_enabled() and not tracing():
            return linear(h, p.get(PACKED_WEIGHT_HH, w), bias=b)
        return h @ w.t() if b is None else torch.addmm(b, h, w.t())

    def step(self, xp: Tensor, state: State, p: Params) -> State:
        """One step under autograd: the reference every backend is tested against."""
        return self.forward_step(xp, state, p)[0]

    def forward_step(self, xp: Tensor, state: State, p: Params) -> tuple[State, tuple]:
        """One step; also returns what ``backward_step`` needs."""
        raise NotImplementedError

    def backward_step(
        self, saved: tuple, dstate: State, p: Params
    ) -> tuple[Tensor, Tensor, State, dict[str, Tensor]]:
        """Hand-derived backward of one step: (dxp, dhp, dstate_prev, dextras)."""
        raise NotImplementedError

    # ---- buffered bptt (optional: faster than forward_step / backward_step) ------------------
    # A cell that declares ``saved_shapes`` writes each step into preallocated buffers and turns
    # what it saved into per-step backward coefficients with whole-sequence ops first, so each
    # step of the loops costs a handful of ops (engine/bptt.py). To keep little memory it saves
    # only what cannot be recomputed in whole-sequence ops (an LSTM: c(t)); the engine keeps x
    # and h, and the backward recomputes the input projection and the gates from them.
    def saved_shapes(self) -> tuple[tuple[int, ...], ...] | None:
        """Per-step shapes (without the batch) of what ``forward_into`` saves; None: this cell
        runs through ``forward_step`` / ``backward_step`` instead."""
        return None

    def bptt_inputs(self, x: Tensor, p: Params) -> tuple[Tensor, Params]:
        """Under autograd, before the engine's Function: the inputs it projects with
        ``weight_ih`` and the parameters it gets. A cell whose input part is not W_ih x + b_ih
        (x itself, a learned projection) rewrites them here, so that autograd routes dx and
        the extra gradients (for instance weight_ih := [W_xproj; W_ih])."""
        return x, p

    def bptt_setup(self, p: Params) -> Params:
        """Once per call: the parameters as the steps use them (for instance W_hh^T), with
        ``w_ih`` and ``b_x``, the bias added to W_ih x for all steps at once (b_ih, and b_hh
        where it can be folded in; None without bias)."""
        return p

    def recurrent_weights(self, **blocks: Tensor) -> Params:
        """Blocks of W_hh as the bptt loops take them: as they are where this cell's compiled
        loops run (``"compiled"`` is then set); else packed for oneDNN's product, each with its
        transpose for the backward ("w_n" -> "wT_n", "w" -> "wT")."""
        if self.compiled_loop and kernels.usable(*blocks.values()):
            return {**{k: w.contiguous() for k, w in blocks.items()}, "compiled": True}
        return {**{k: pack(w) for k, w in blocks.items()},
                **{"wT" + k[1:]: pack(w.t().contiguous()) for k, w in blocks.items()}}

    def recurrent_backward(self, dz: Tensor, q: Params, dh_ext: Tensor) -> Tensor:
        """dh(t-1) = W_hh^T dz (times the recurrent-dropout mask) + dh_ext, for a step of the
        Python bptt loop (``q["wT"]``: ``recurrent_weights``' transpose)."""
        m = q.get(RECURRENT_MASK)
        if m is None:
            return linear(dz, q["wT"], dh_ext)
        return linear(dz, q["wT"]).mul_(m).add_(dh_ext)

    def project(self, x: Tensor, q: Params) -> Tensor:
        """W_ih x + b_x for every step: one product (run in the forward, and again in the
        backward instead of keeping its (T, B, G H) result). ``x`` is what ``bptt_inputs``
        returned."""
        xp = linear(x.reshape(-1, x.shape[-1]), q["w_ih"], bias=q["b_x"])
        return xp.view(*x.shape[:-1], xp.shape[-1])

    def project_backward(self, x: Tensor, dxp: Tensor, p: Params, grads: dict[str, Tensor],
                         need_dx: bool) -> Tensor | None:
        """Backward of ``project`` for all steps at once: dW_ih and db_ih into ``grads``, dx
        returned (each one product over the whole sequence)."""
        x2, d2 = x.reshape(-1, x.shape[-1]), dxp.reshape(-1, dxp.shape[-1])
        if "weight_ih" not in grads:  # (the engine may have formed it beside dW_hh)
            grads["weight_ih"] = weight_grad(d2, x2)  # dW_ih = dxp^T x
        if "bias_ih" in p and "bias_ih" not in grads:  # (the compiled loop may have summed it)
            grads["bias_ih"] = d2.sum(0)
        if not need_dx:
            return None
        return linear(d2, p["weight_ih"].t().contiguous()).view(x.shape)  # dx = dxp W_ih

    def forward_into(self, xp: Tensor, state: State, q: Params, h: Tensor,
                     saved: list[Tensor]) -> State:
        """One step writing the new h into ``h`` and what it saves into ``saved`` (this step's
        slots of the buffers); returns the new state (views of those slots)."""
        raise NotImplementedError

    def backward_prepare(self, saved: list[Tensor], xp: Tensor, h_prev: Tensor, state0: State,
                         q: Params) -> tuple[tuple[Tensor, ...], Tensor]:
        """Before the backward loop, from what ``forward_into`` saved, the recomputed input
        projection ``xp`` (W_ih x + b_x, a temporary the cell may overwrite) and h(t-1) for
        every step: (per-step tensors, each (T, ...), that ``backward_into`` gets one step of;
        the buffer of pre-activation gradients they write into)."""
        raise NotImplementedError

    def backward_into(self, step: tuple[Tensor, ...], dstate: State, dh_ext: Tensor,
                      q: Params) -> State:
        """One step backward: writes its pre-activation gradients into its slots in ``step``
        and returns the gradient of the previous state, with ``dh_ext`` (the loss's gradient at
        the previous step) added to the h part. May overwrite ``dstate``."""
        raise NotImplementedError

    def hidden_states(self, saved: list[Tensor], state0: State, mask: Tensor | None,
                      q: Params) -> Tensor:
        """For a cell that does not save h (``saves_h`` False): h(t-1) of every step, (T, B,
        H), rebuilt from what ``forward_into`` saved (``q``: ``bptt_setup``'s, with the
        engine's "x"). It may build h beside x, in q["xh"] (T, B, I + H) = [x, h(t-1)]: the
        engine then forms dW_ih and dW_hh in one product over it."""
        raise NotImplementedError

    def forward_compiled(self, xp: Tensor, state: State, q: Params, hs: Tensor,
                         saved: list[Tensor], mask: Tensor | None) -> State:
        """The whole forward loop in compiled code (``engine/loops.cpp``), which the engine
        runs instead of ``forward_into`` step by step where ``bptt_setup`` set "compiled"
        (``recurrent_weights``): fills ``hs[1:]`` and ``saved`` as ``forward_into`` would and
        returns the final state. Tensors come dense."""
        raise NotImplementedError

    def backward_compiled(self, saved: list[Tensor], xp: Tensor | None, h_prev: Tensor,
                          state0: State, q: Params, dhseq: Tensor, dstate: State,
                          mask: Tensor | None) -> tuple[Tensor, State]:
        """The whole backward loop in compiled code, in place of ``backward_prepare`` and
        ``backward_into`` (same arguments; ``dhseq`` the loss's gradient at every step,
        ``dstate`` the last state's, which it may overwrite): (the buffer for
        ``backward_finish``, the gradient of the first state)."""
        raise NotImplementedError

    def backward_finish(self, dz: Tensor, q: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """After the loop: (dxp, dhp, extra parameter gradients) from the filled buffer. Where
        dhp is dxp or its leading blocks (dxp[..., :k]), the engine takes db_hh from db_ih's
        head: bias_hh's rows must then be those blocks' (as in every cell here)."""
        return dz, dz, {}

    def buffered_recurrent_inputs(self, q: Params, saved: list[Tensor],
                                  h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        """``recurrent_inputs`` for a buffered cell, which may also read what its
        ``backward_prepare`` recomputed and kept in ``q`` (for instance r * h(t-1))."""
        return self.recurrent_inputs(saved, h_prev)

    def recurrent_inputs(self, saved: list[Tensor], h_prev: Tensor) -> list[tuple[slice, Tensor]]:
        """Which vector each block of W_hh rows multiplied, for all steps: [(rows, U)], with U
        of shape (T, B, hidden). ``saved`` holds what ``forward_step`` kept, stacked over time
        (one tensor per item). dW_hh[rows] = dz[..., rows]^T U: one matmul after the loop."""
        return [(slice(None), h_prev)]

    def zero_state(self, batch: int, like: Tensor) -> State:
        z = like.new_zeros(batch, self.hidden_size)
        return tuple(z if i == 0 else z.clone() for i in range(self.num_states))
