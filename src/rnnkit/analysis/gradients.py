"""Gradient flow through time (deck 000): how large dL/dh_k is, k steps back from the loss.

Backpropagation through time multiplies the loss's gradient by one Jacobian dh_t/dh_{t-1} per
step back; when their product shrinks geometrically (a vanilla tanh RNN), a loss cannot teach
what happened many steps earlier. Here the model is unrolled step by step (``unrolled``) with
every h_t kept in the graph, one backward pass fills every dL/dh_t, and the norm per example
(averaged over the batch) is read for each layer and each step back. The loss is the last
step's (``loss="last"``: the adding problem's, and for a many-to-many model the loss at T
alone, so "k steps back" means one thing) or the sum over all steps (``"all"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..models.language_model import LanguageModel
from .runs import (
    Batch,
    analysis_dir,
    load_for_analysis,
    pyplot,
    run_batch,
    run_label,
    save_figure,
    write_json,
)
from .unrolled import model_inputs, recurrent_of, unroll

LOSSES = ("last", "all")
FALLOFF_STEPS = 100


@dataclass
class GradientFlow:
    """``norms[layer][k]``: the mean over the batch of ||dL/dh_{T-1-k}||, k steps back from
    the last step.

    Example:
        >>> import torch
        >>> from rnnkit.models.synced import SyncedRNN
        >>> model = SyncedRNN(2, 1, cell="rnn_tanh", hidden=8, readout="last")
        >>> flow = gradient_flow(model, torch.rand(30, 4, 2), torch.rand(4))
        >>> len(flow.norms), len(flow.norms[0])          # one layer, 30 steps back
        (1, 30)
        >>> flow.norms[0][0] > 0
        True
    """

    norms: list[list[float]]

    def falloff(self, steps: int) -> list[float | None]:
        """Per layer: norm at 0 steps back / norm at ``steps`` back (None if the sequence is
        shorter or the far gradient is exactly 0)."""
        out: list[float | None] = []
        for layer in self.norms:
            far = layer[steps] if steps < len(layer) else 0.0
            out.append(layer[0] / far if far > 0 else None)
        return out


def task_loss(model: nn.Module, top: Tensor, targets: Tensor, loss: str = "last") -> Tensor:
    """The task's loss from the top layer's h (T, B, H), summed over the batch (so each
    example's gradient is its own loss's): cross-entropy of the next token (language model),
    squared error of the last step's number (adding), or cross-entropy per step."""
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if isinstance(model, LanguageModel) or model.config.get("readout") == "each":
        steps = slice(-1, None) if loss == "last" else slice(None)
        logits = model.output(top[steps])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[steps].reshape(-1),
                               reduction="sum")
    out = model.output(top[-1])  # many-to-one: the last step is the only loss
    if model.config["outputs"] == 1:
        return ((out.squeeze(-1) - targets) ** 2).sum()
    return F.cross_entropy(out, targets, reduction="sum")


def hidden_gradients(model: nn.Module, inputs: Tensor, targets: Tensor,
                     loss: str = "last") -> list[Tensor]:
    """dL/dh_t for every layer: a list of (T, B, H), one backward pass of the unrolled model
    (in float64, so far-back gradients of 1e-30 are still numbers)."""
    model = _float64(model)
    rnn = recurrent_of(model)
    x = model_inputs(model, inputs.double() if inputs.is_floating_point() else inputs)
    unrolled = unroll(rnn, x, keep_grad=True)
    task_loss(model, unrolled.top, targets.double() if targets.is_floating_point() else targets,
              loss).backward()
    return [torch.stack([s[0].grad if s[0].grad is not None else torch.zeros_like(s[0])
                         for s in layer]) for layer in unrolled.states]


def gradient_flow(model: nn.Module, inputs: Tensor, targets: Tensor,
                  loss: str = "last") -> GradientFlow:
    """The norms of ``hidden_gradients``, per layer and step back from the last step."""
    grads = hidden_gradients(model, inputs, targets, loss)
    return GradientFlow([g.norm(dim=-1).mean(1).flip(0).tolist() for g in grads])


def _float64(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double().eval()


# ---- a run directory ----------------------------------------------------------------------

def forget_bias(model: nn.Module) -> float | None:
    """The mean forget-gate bias (b_ih + b_hh of the f rows) of the first layer, for the cells
    that have one (the keep gate z for GRU-like cells), else None."""
    rnn = recurrent_of(model)
    cell, p = rnn.cells[0], rnn.layer_params(0, 0)
    for gate, _sign in cell.keep_gates:
        if gate in cell.gate_names and "bias_ih" in p:
            H, i = rnn.hidden_size, cell.gate_names.index(gate)
            rows = slice(i * H, (i + 1) * H)
            return float((p["bias_ih"][rows] + p["bias_hh"][rows]).detach().mean())
    return None


def run_gradients(run_dir: str | Path, which: str = "best", batch: int = 16,
                  length: int | None = None, loss: str = "last") -> dict[str, Any]:
    """Gradient flow of a run at initialisation and at ``which``: the result (also in
    ``RUN/analysis/gradients.json``, drawn in ``gradients.png``).

    Example:
        >>> r = run_gradients("runs/adding-rnn")        # doctest: +SKIP
        >>> r["falloff_steps"], r["trained"]["falloff"]  # doctest: +SKIP
        (100, [3.1e9])
    """
    result = _run_result(run_dir, which, batch, length, loss)
    write_json(run_dir, "gradients.json", result)
    plot_flows([result], analysis_dir(run_dir) / "gradients.png")
    return result


def compare_gradients(run_dirs: list[str | Path], which: str = "best", batch: int = 16,
                      length: int | None = None, loss: str = "last") -> dict[str, Any]:
    """Several runs' flows on one plot (e.g. rnn_tanh vs lstm vs gru on the adding problem),
    written beside the first run: ``analysis/gradients_compare.{json,png}``."""
    results = [_run_result(d, which, batch, length, loss) for d in run_dirs]
    out = {"runs": results}
    write_json(run_dirs[0], "gradients_compare.json", out)
    plot_flows(results, analysis_dir(run_dirs[0]) / "gradients_compare.png")
    return out


def _run_result(run_dir, which, batch, length, loss) -> dict[str, Any]:
    what = "gradient flow"
    init = load_for_analysis(run_dir, "init", what)
    trained = load_for_analysis(run_dir, which, what)
    data: Batch = run_batch(trained, batch, length)
    result: dict[str, Any] = {"run": str(run_dir), "label": run_label(trained),
                              "cell": trained.model.config["cell"], "loss": loss,
                              "length": int(data.inputs.shape[0]), "batch": batch,
                              "checkpoint": trained.path.stem}
    # the yardstick is the fall over 100 steps back; a shorter run reads its length
    result["falloff_steps"] = span = min(FALLOFF_STEPS, result["length"] - 1)
    for name, loaded in (("init", init), ("trained", trained)):
        flow = gradient_flow(loaded.model, data.inputs, data.targets, loss)
        result[name] = {"norms": flow.norms, "falloff": flow.falloff(span),
                        "forget_bias": forget_bias(loaded.model)}
    result["training"] = training_norms(run_dir, trained.config)
    return result


def training_norms(run_dir: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """The gradient norm before clipping over training, as the Trainer logged it (the
    largest since each metrics line), with the run's clipping: the exploding case, with and
    without ``--clip``, side by side when runs are compared."""
    from ..train.rundir import RunDir

    rows = RunDir(Path(run_dir), write=False).metrics()
    return {"clip": config.get("clip"), "clip_mode": config.get("clip_mode", "norm"),
            "grad_norm": [[r["step"], r["grad_norm"]] for r in rows if "grad_norm" in r]}


def plot_flows(results: list[dict[str, Any]], path: Path) -> Path:
    """||dL/dh|| against steps back, log scale: solid after training, dashed at init."""
    plt = pyplot()
    logged = any(r.get("training", {}).get("grad_norm") for r in results)
    fig, axes = plt.subplots(1, 1 + logged, figsize=(7.5 * (1 + logged), 4.5), dpi=100,
                             squeeze=False)
    ax = axes[0, 0]
    for i, r in enumerate(results):
        color = f"C{i}"
        for name, style in (("trained", "-"), ("init", "--")):
            for layer, norms in enumerate(r[name]["norms"]):
                tag = f" layer {layer}" if len(r[name]["norms"]) > 1 else ""
                ax.plot(range(len(norms)), [max(n, 1e-300) for n in norms], style,
                        color=color, alpha=1.0 if layer == len(r[name]["norms"]) - 1 else 0.5,
                        label=f"{r['label']}{tag}, {name}")
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the loss (k)")
    ax.set_ylabel("mean ||dL/dh_{T-k}||")
    ax.set_title("gradient flow through time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if logged:
        _plot_training_norms(axes[0, 1], results)
    return save_figure(fig, path)


def _plot_training_norms(ax, results: list[dict[str, Any]]) -> None:
    """||dL/dtheta|| before clipping over the training steps, one line per run, the clip
    threshold dotted."""
    for i, r in enumerate(results):
        t = r.get("training") or {}
        if not t.get("grad_norm"):
            continue
        clip = t["clip"] if t.get("clip") and t.get("clip_mode") == "norm" else None
        steps, norms = zip(*t["grad_norm"])
        ax.plot(steps, norms, color=f"C{i}",
                label=f"{r['label']}, " + (f"clipped at {clip:g}" if clip else "no norm clip"))
        if clip:
            ax.axhline(clip, color=f"C{i}", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient norm before clipping")
    ax.set_title("exploding gradients and clipping during training")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
