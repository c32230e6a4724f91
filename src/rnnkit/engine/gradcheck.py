"""A cell's hand-derived backward against autograd, in float64 (``rnnkit gradcheck``).

Two checks, each gradient compared with autograd's:

* step by step (a cell with ``backward_step``): along one random sequence, each step's
  ``forward_step`` / ``backward_step`` against autograd through ``step``, the weight gradients
  formed from dxp and dhp as the ``bptt`` engine forms them; a difference names the step and
  the parameter (or input, or state) whose gradient is wrong;
* the whole sequence: the ``bptt`` engine against the ``autograd`` one (step "all").

Example:
    >>> from rnnkit.engine.gradcheck import check_cell
    >>> check_cell("gru").ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..cells import Cell, cell_class, make_cell
from ..cells.user import has_backward
from .run import run_sequence

# a gradient differs where max |mine - autograd's| > RTOL * max(1, max |autograd's|)
RTOL = 1e-7


@dataclass
class Difference:
    step: int | None  # 1 for the first step; None: the whole sequence
    gradient: str  # a parameter's name, "x(t)", "h(t-1)" ..., or "forward h(t)"
    error: float  # max |rnnkit's - autograd's|
    scale: float  # max |autograd's|


@dataclass
class Report:
    cell: str
    steps_checked: bool  # the step-by-step check ran (the cell has backward_step)
    compared: int = 0  # gradients compared
    max_error: float = 0.0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def add(self, step: int | None, name: str, mine: Tensor | None, ref: Tensor | None,
            blocks: tuple[str, ...] = ()) -> None:
        """Compare one gradient; ``blocks``: the names of its row blocks (gates), to say which
        of them differ."""
        if mine is None and ref is None:
            return
        mine = torch.zeros_like(ref) if mine is None else mine
        ref = torch.zeros_like(mine) if ref is None else ref
        self.compared += 1
        if mine.shape != ref.shape:
            self.differences.append(Difference(step, f"{name} (shape {tuple(mine.shape)}, "
                                               f"not {tuple(ref.shape)})", float("inf"), 0.0))
            return
        err = float((mine - ref).abs().max()) if ref.numel() else 0.0
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        self.max_error = max(self.max_error, err)
        if not err <= RTOL * max(1.0, scale):  # (a NaN differs too)
            if len(blocks) > 1 and ref.shape[0] % len(blocks) == 0:
                parts = zip(blocks, (mine - ref).chunk(len(blocks)), ref.chunk(len(blocks)))
                bad = [b for b, d, r in parts
                       if not float(d.abs().max()) <= RTOL * max(1.0, float(r.abs().max()))]
                if len(bad) < len(blocks):
                    name = f"{name} (rows {','.join(bad)})"
            self.differences.append(Difference(step, name, err, scale))


def _state_names(cell: Cell, suffix: str) -> list[str]:
    base = ["h", "c"] if cell.num_states == 2 else ["h"] if cell.num_states == 1 else [
        f"state{i}" for i in range(cell.num_states)]
    return [f"{b}({suffix})" for b in base]


def check_cell(name: str, input_size: int = 3, hidden_size: int = 4, batch: int = 3,
               steps: int = 5, seed: int = 0) -> Report:
    """Check the backward of the cell ``name`` (a registered name or ``FILE.py:CLASS``)."""
    if not has_backward(cell_class(name)):
        raise ValueError(f"cell {name!r} has no backward step (backward_step) to check: it "
                         "runs on autograd; define backward_step to run it on bptt")
    cell = make_cell(name, input_size, hidden_size)
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    p = {k: torch.rand(s, generator=g, dtype=dt) - 0.5 for k, s in cell.parameter_shapes().items()}
    x = torch.randn(steps, batch, input_size, generator=g, dtype=dt)
    state0 = tuple(torch.randn(batch, hidden_size, generator=g, dtype=dt) * 0.5
                   for _ in range(cell.num_states))
    if cell.parallel:  # the minimal cells' log-space scan needs h > 0
        state0 = tuple(s.abs() + 0.1 for s in state0)
    report = Report(name, steps_checked=type(cell).backward_step is not Cell.backward_step)
    if report.steps_checked:
        _check_steps(cell, p, x, state0, g, report)
    _check_sequence(cell, p, x, state0, g, report)
    return report


def _leaves(p: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone().requires_grad_() for k, v in p.items()}


def _check_steps(cell: Cell, p, x, state0, g, report: Report) -> None:
    input_names = [n for n in ("weight_ih", "bias_ih", *cell.input_extras) if n in p]
    prev_names, new_names = _state_names(cell, "t-1"), _state_names(cell, "t")
    state = state0
    for t in range(x.shape[0]):
        # autograd through step: the reference
        x_t = x[t].clone().requires_grad_()
        st = tuple(s.detach().clone().requires_grad_() for s in state)
        pp = _leaves(p)
        xp = cell.input_projection(x_t.unsqueeze(0), pp)[0]
        new = cell.step(xp, st, pp)
        dnew = tuple(torch.randn(n.shape, generator=g, dtype=n.dtype) for n in new)
        wrt = [x_t, *st, *pp.values()]
        ref = torch.autograd.grad(new, wrt, dnew, allow_unused=True)
        ref_by = dict(zip(["x(t)", *prev_names, *pp], ref))
        # the cell's own forward_step and backward_step, as the bptt engine runs them
        with torch.no_grad():
            pd = {k: v.detach() for k, v in p.items()}
            xpd = xp.detach()
            mine_new, saved = cell.forward_step(xpd, tuple(s.detach() for s in state), pd)
            for n_, a, b in zip(new_names, mine_new, new):
                report.add(t + 1, f"forward {n_}", a, b.detach())
            dxp, dhp, dprev, dext = cell.backward_step(tuple(saved), dnew, pd)
        mine: dict[str, Tensor | None] = {}
        # the input projection's backward (outside the engine's Function: autograd's)
        x2 = x[t].clone().requires_grad_()
        p2 = _leaves({n: p[n] for n in input_names})
        xp2 = cell.input_projection(x2.unsqueeze(0), {**pd, **p2})[0]
        gin = torch.autograd.grad(xp2, [x2, *p2.values()], dxp, allow_unused=True)
        mine["x(t)"] = gin[0]
        mine.update(zip(p2, gin[1:]))
        mine.update(zip(prev_names, dprev))
        # the recurrent weights as the engine forms them from dhp
        columns = [s.unsqueeze(0) for s in saved]
        h_prev = state[0].detach().unsqueeze(0)
        d2 = dhp.reshape(-1, dhp.shape[-1])
        if "weight_hh" in p and "weight_hh" not in dext:
            dw = torch.zeros_like(p["weight_hh"])
            for rows, U in cell.recurrent_inputs(columns, h_prev):
                dw[rows] += d2[:, rows].t() @ U.reshape(-1, U.shape[-1])
            mine["weight_hh"] = dw
        if "bias_hh" in p and "bias_hh" not in dext:
            mine["bias_hh"] = d2.sum(0)
        mine.update(dext)
        for key in [*p, "x(t)", *prev_names]:  # the parameters first
            report.add(t + 1, key, mine.get(key), ref_by[key], _blocks(cell, key, p))
        state = tuple(n.detach() for n in new)


def _check_sequence(cell: Cell, p, x, state0, g, report: Report) -> None:
    results = []
    dout = dfinal = None
    for backend in ("autograd", "bptt"):
        xx, st, pp = x.clone().requires_grad_(), tuple(s.clone().requires_grad_()
                                                       for s in state0), _leaves(p)
        out, final = run_sequence(cell, xx, st, pp, backend)
        if dout is None:
            dout = torch.randn(out.shape, generator=g, dtype=out.dtype)
            dfinal = [torch.randn(f.shape, generator=g, dtype=f.dtype) for f in final]
        loss = (out * dout).sum() + sum((f * d).sum() for f, d in zip(final, dfinal))
        grads = torch.autograd.grad(loss, [xx, *st, *pp.values()], allow_unused=True)
        results.append((out.detach(), grads))
    names = ["x", *_state_names(cell, "0"), *p]
    (out_ref, ref), (out_mine, mine) = results
    report.add(None, "forward h", out_mine, out_ref)
    by_name = {n: (a, b) for n, a, b in zip(names, mine, ref)}
    for n in [*p, *names[: -len(p) or None]]:
        report.add(None, n, *by_name[n], _blocks(cell, n, p))


def _blocks(cell: Cell, name: str, p: dict[str, Tensor]) -> tuple[str, ...]:
    """The gate names of a parameter's row blocks (W_ih, W_hh, b_ih, b_hh of a cell with
    several gates), else ()."""
    rows = cell.gates * cell.hidden_size
    if name in p and p[name].dim() >= 1 and p[name].shape[0] == rows and \
            len(cell.gate_names) == cell.gates:
        return tuple(cell.gate_names)
    return ()


def format_report(r: Report, limit: int = 20) -> str:
    """The table of differences (at most ``limit`` rows), or the line saying they match."""
    how = ("step by step and over the whole sequence" if r.steps_checked
           else "over the whole sequence, through the engine's loops")
    if r.ok:
        return (f"{r.cell}: backward matches autograd ({r.compared} gradients in float64, "
                f"{how}; largest difference {r.max_error:.1e})")
    lines = [f"{'step':>4}  {'gradient':<20} {'max |bptt - autograd|':>22}  "
             f"{'max |autograd|':>14}"]
    for d in r.differences[:limit]:
        step = "all" if d.step is None else str(d.step)
        lines.append(f"{step:>4}  {d.gradient:<20} {d.error:>22.3e}  {d.scale:>14.3e}")
    if len(r.differences) > limit:
        lines.append(f"... and {len(r.differences) - limit} more")
    first = r.differences[0]
    where = "over the whole sequence" if first.step is None else f"first at step {first.step}"
    names = [d.gradient for d in r.differences if d.step == first.step]
    lines.append(f"{r.cell}: backward differs from autograd, {where}, in {', '.join(names)} "
                 f"({len(r.differences)} of {r.compared} gradients differ)")
    return "\n".join(lines)
