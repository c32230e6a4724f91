"""The loss curves of a run as ``RUN/loss.png`` (training loss per logged step, validation
loss per evaluation), drawn with matplotlib's file-only Agg backend."""

from __future__ import annotations

import io

from .checkpoint import atomic_write_bytes
from .rundir import RunDir


def plot_losses(run: RunDir) -> None:
    """Draw ``metrics.jsonl`` into ``loss.png`` (nothing to draw: no file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.metrics()
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if not train and not val:
        return
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for points, label, style in ((train, "train", "-"), (val, "validation", "o-")):
        if points:
            ax.plot(*zip(*points), style, label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per unit)")
    ax.set_title(run.path.name)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(run.file("loss.png"), buf.getvalue())
