"""Recurrent spectra and the forward signal (decks 002, 003).

The recurrent matrix W_hh is multiplied in once per step: its largest eigenvalue (the spectral
radius) and largest singular value decide whether a signal, and the gradient, shrinks or grows
as it travels through time. For gated cells W_hh stacks one H x H block per gate (LSTM: i, f,
g, o; GRU: r, z, n, as PyTorch orders them): each block is analysed on its own and named.

Deck 002's point that the signal vanishes or explodes "even during forward propagation" is
measured directly: ||dh_t/dx_1||, the Frobenius norm of how h at step t moves with the first
input, for every t. It is computed in one forward pass with forward-mode differentiation: the
batch is repeated once per input dimension, each copy carrying one unit tangent at step 1.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..train.checkpoint import CHECKPOINTS, load_checkpoint
from .runs import (
    analysis_dir,
    load_for_analysis,
    pyplot,
    run_batch,
    run_label,
    save_figure,
    write_json,
)
from .unrolled import model_inputs, recurrent_of, unroll


def gate_blocks(model: nn.Module, layer: int = 0) -> dict[str, Tensor]:
    """W_hh of one layer split into its H x H gate blocks, by gate name (one block "a" for
    the Elman cells).

    Example:
        >>> from rnnkit.models.synced import SyncedRNN
        >>> sorted(gate_blocks(SyncedRNN(2, 1, cell="gru", hidden=4)))
        ['n', 'r', 'z']
    """
    rnn = recurrent_of(model)
    cell, p = rnn.cells[layer], rnn.layer_params(layer, 0)
    w = p.get("weight_hh")
    H = rnn.hidden_size
    if w is None or w.shape[-1] != H or w.shape[0] % H:
        raise UserError(f"cell {cell.name!r} has no square recurrent matrix W_hh (its gates do "
                        "not read h(t-1) through one): spectra apply to lstm, gru, rnn_tanh ...")
    names = cell.gate_names if len(cell.gate_names) == w.shape[0] // H else [
        f"block{i}" for i in range(w.shape[0] // H)]
    return {name: w[i * H:(i + 1) * H].detach().double() for i, name in enumerate(names)}


def block_spectrum(w: Tensor) -> dict[str, Any]:
    """Eigenvalues (as [re, im]), singular values, spectral radius and largest singular
    value of one square matrix."""
    eig = torch.linalg.eigvals(w)
    sv = torch.linalg.svdvals(w)
    return {"spectral_radius": float(eig.abs().max()), "max_singular_value": float(sv[0]),
            "eigenvalues": [[float(z.real), float(z.imag)] for z in eig],
            "singular_values": sv.tolist()}


def spectral_radii(model: nn.Module) -> dict[str, float]:
    """The spectral radius of every W_hh gate block, keyed ``"LAYER.GATE"`` (the Trainer logs
    them at each evaluation); empty for a model without one square recurrent matrix per gate
    (no recurrent stack, a bidirectional one, minGRU ...).

    Example:
        >>> from rnnkit.models.synced import SyncedRNN
        >>> sorted(spectral_radii(SyncedRNN(2, 1, cell="gru", hidden=4)))
        ['0.n', '0.r', '0.z']
    """
    try:
        rnn = recurrent_of(model)
        blocks = [gate_blocks(model, k) for k in range(rnn.num_layers)]
    except UserError:
        return {}
    return {f"{k}.{gate}": float(torch.linalg.eigvals(w).abs().max())
            for k, layer in enumerate(blocks) for gate, w in layer.items()}


def spectra(model: nn.Module) -> list[dict[str, dict[str, Any]]]:
    """Per layer, per gate block: ``block_spectrum``."""
    rnn = recurrent_of(model)
    return [{name: block_spectrum(w) for name, w in gate_blocks(model, k).items()}
            for k in range(rnn.num_layers)]


def forward_signal(model: nn.Module, inputs: Tensor, chunk: int = 256) -> list[list[float]]:
    """Per layer, for t = 1..T: the mean over the batch of ||dh_t/dx_1||_F, where x_1 is what
    the recurrent stack reads at the first step (the embedding, for tokens). The input
    dimensions are pushed through in groups of about ``chunk`` copies of the batch (memory).
    In float64, so a signal of 1e-100 is still a number."""
    model = copy.deepcopy(model).double().eval().requires_grad_(False)  # no graph: forward only
    rnn = recurrent_of(model)
    x = model_inputs(model, inputs.double() if inputs.is_floating_point() else inputs)
    T, B, I = x.shape
    squares = torch.zeros(rnn.num_layers, T, B, dtype=x.dtype)
    per = max(1, chunk // B)  # input dimensions per pass
    for lo in range(0, I, per):
        dims = torch.arange(lo, min(I, lo + per))
        n = len(dims)
        x_rep = x.unsqueeze(2).expand(T, B, n, I).reshape(T, B * n, I)
        tangent = torch.zeros_like(x_rep)
        tangent[0] = F.one_hot(dims, I).to(x.dtype).repeat(B, 1)  # copy (b, j): x_1[dims[j]]
        with fwad.dual_level():
            unrolled = unroll(rnn, fwad.make_dual(x_rep, tangent))
            for k, layer in enumerate(unrolled.states):
                jac = torch.stack([fwad.unpack_dual(s[0]).tangent for s in layer])  # (T, B n, H)
                squares[k] += jac.view(T, B, n, -1).pow(2).sum((2, 3))
    return squares.sqrt().mean(2).tolist()


# ---- a run directory ----------------------------------------------------------------------

def run_spectra(run_dir: str | Path, which: str = "best", batch: int = 2,
                length: int | None = None) -> dict[str, Any]:
    """Spectra of every checkpoint the run has (init, best, last: the spectral radius over
    training at the steps they were written) and the forward signal at init and at ``which``;
    also in ``RUN/analysis/spectra.json`` and ``spectra.png``.

    Example:
        >>> r = run_spectra("runs/lm")                                  # doctest: +SKIP
        >>> r["checkpoints"][0]["layers"][0]["f"]["spectral_radius"]   # doctest: +SKIP
        0.93
    """
    what = "spectra"
    trained = load_for_analysis(run_dir, which, what)
    init = load_for_analysis(run_dir, "init", what)
    gate_blocks(trained.model)  # refuse a cell without W_hh before any work
    checkpoints = []
    for name in CHECKPOINTS:
        path = Path(run_dir) / "checkpoints" / f"{name}.safetensors"
        if not path.is_file():
            continue
        model = load_for_analysis(run_dir, name, what).model
        step = load_checkpoint(path).metadata.get("step", 0 if name == "init" else None)
        checkpoints.append({"checkpoint": name, "step": step, "layers": spectra(model)})
    checkpoints.sort(key=lambda c: (c["step"] is None, c["step"] or 0))
    data = run_batch(trained, batch, length)
    result = {"run": str(run_dir), "label": run_label(trained),
              "cell": trained.model.config["cell"], "checkpoint": trained.path.stem,
              "checkpoints": checkpoints, "over_training": logged_radii(run_dir),
              "length": int(data.inputs.shape[0]),
              "forward_signal": {"init": forward_signal(init.model, data.inputs),
                                 "trained": forward_signal(trained.model, data.inputs)}}
    write_json(run_dir, "spectra.json", result)
    plot_spectra(result, analysis_dir(run_dir) / "spectra.png")
    return result


def logged_radii(run_dir: str | Path) -> list[dict[str, Any]]:
    """The spectral radii the Trainer logged at each evaluation: ``{"step", "radii"}`` rows
    (empty for a run trained before it logged them)."""
    from ..train.rundir import RunDir

    return [{"step": r["step"], "radii": r["spectral_radius"]}
            for r in RunDir(Path(run_dir), write=False).metrics() if "spectral_radius" in r]


def plot_spectra(result: dict[str, Any], path: Path) -> Path:
    """Eigenvalues of each gate block (first layer) against the unit circle, init and
    trained; the spectral radius per checkpoint; ||dh_t/dx_1|| over t."""
    plt = pyplot()
    fig, (ax_eig, ax_rad, ax_sig) = plt.subplots(1, 3, figsize=(15, 4.5), dpi=100)
    first, last = result["checkpoints"][0], result["checkpoints"][-1]
    circle = torch.linspace(0, 2 * torch.pi, 200)
    ax_eig.plot(circle.cos(), circle.sin(), color="grey", lw=0.8)
    for i, (gate, spec) in enumerate(last["layers"][0].items()):
        z = torch.tensor(spec["eigenvalues"])
        ax_eig.scatter(z[:, 0], z[:, 1], s=6, color=f"C{i}", label=f"{gate} ({last['checkpoint']})")
        z0 = torch.tensor(first["layers"][0][gate]["eigenvalues"])
        ax_eig.scatter(z0[:, 0], z0[:, 1], s=4, color=f"C{i}", alpha=0.25, marker="x")
    ax_eig.set_aspect("equal")
    ax_eig.set_title("eigenvalues of W_hh blocks, layer 0 (x: init)")
    ax_eig.legend(fontsize=7)
    steps = [c["step"] or 0 for c in result["checkpoints"]]
    logged = result.get("over_training") or []
    for layer in range(len(last["layers"])):
        for i, gate in enumerate(last["layers"][layer]):
            style = dict(color=f"C{i}", alpha=1.0 if layer == 0 else 0.5,
                         label=f"layer {layer} {gate}")
            saved = [(step, c["layers"][layer][gate]["spectral_radius"])
                     for step, c in zip(steps, result["checkpoints"])]
            key = f"{layer}.{gate}"
            evals = [(row["step"], row["radii"][key]) for row in logged if key in row["radii"]]
            if evals:  # a line through every evaluation, from init; dots at the checkpoints
                ax_rad.plot(*zip(*saved), "o", color=style["color"], alpha=style["alpha"])
                ax_rad.plot(*zip(*sorted(saved[:1] + evals)), "-", **style)
            else:
                ax_rad.plot(*zip(*saved), "o-", **style)
    ax_rad.axhline(1.0, color="grey", lw=0.8)
    ax_rad.set_xlabel("step (lines: each evaluation; dots: init, best, last)")
    ax_rad.set_title("spectral radius over training")
    ax_rad.legend(fontsize=7)
    for name, style in (("trained", "-"), ("init", "--")):
        for layer, norms in enumerate(result["forward_signal"][name]):
            ax_sig.plot(range(1, len(norms) + 1), [max(n, 1e-300) for n in norms], style,
                        color=f"C{layer}", label=f"layer {layer}, {name}")
    ax_sig.set_yscale("log")
    ax_sig.set_xlabel("t")
    ax_sig.set_title("forward signal ||dh_t/dx_1||")
    ax_sig.legend(fontsize=7)
    fig.suptitle(result["label"])
    return save_figure(fig, path)
