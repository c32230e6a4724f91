"""A run's pictures, drawn with matplotlib's file-only Agg backend and written atomically:
the loss curves (``RUN/loss.png``: training loss per logged step, validation loss per
evaluation) and a seq2seq model's alignments (``RUN/attention.png``, deck 003's heatmaps)."""

from __future__ import annotations

import io
from pathlib import Path

from torch import Tensor

from .checkpoint import atomic_write_bytes
from .rundir import RunDir


def plot_losses(run: RunDir) -> None:
    """Draw ``metrics.jsonl`` into ``loss.png`` (nothing to draw: no file)."""
    fig = loss_figure(run.metrics(), (7, 4))
    if fig is not None:
        fig.axes[0].set_title(run.path.name)
        _save(fig, run.file("loss.png"))


def loss_figure(rows: list[dict], size: tuple[float, float]):
    """Training loss per logged step and validation loss per evaluation, from metrics rows;
    None when they hold neither (also the report's loss section)."""
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if not train and not val:
        return None
    fig, ax = _pyplot().subplots(figsize=size, dpi=100)
    for points, label, style in ((train, "train", "-"), (val, "validation", "o-")):
        if points:
            ax.plot(*zip(*points), style, label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per unit)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_attention(path: str | Path, examples: list[tuple[list[str], list[str], Tensor]]
                   ) -> None:
    """One heatmap per (source tokens, output tokens, weights (outputs, sources)): row t is
    where the decoder looked while writing output token t (nothing to draw: no file)."""
    if not examples:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(examples), figsize=(4.2 * len(examples), 4.2), dpi=100,
                             squeeze=False)
    for ax, (source, output, weights) in zip(axes[0], examples):
        w = weights[:len(output), :len(source)].float().numpy()
        ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source)), [_shown(t) for t in source], rotation=90, fontsize=8)
        ax.set_yticks(range(len(w)), [_shown(t) for t in output[:len(w)]], fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
    fig.suptitle("attention: where each output token looked")
    _save(fig, Path(path))


def _shown(token: str) -> str:
    return "␣" if token == " " else token  # an open box: a visible space


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
