"""A trained run as the analyses see it: its model at a checkpoint, a batch of its own
validation data, and ``RUN/analysis/`` where the results go (JSON and PNG, written atomically).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..train.checkpoint import LoadedRun, atomic_write_bytes, load_run, read_task, to_json

TASKS = ("lm", "synthetic")  # the runs whose models the analyses unroll


@dataclass
class Batch:
    """Inputs (T, B) tokens or (T, B, F) features, and the targets the task's loss reads."""

    inputs: Tensor
    targets: Tensor


def load_for_analysis(run_dir: str | Path, which: str = "best", what: str = "this analysis"
                      ) -> LoadedRun:
    """``load_run`` for a language-model or synthetic-task run; any other says so."""
    task = read_task(run_dir)
    if task is not None and task not in TASKS:
        raise UserError(f"{run_dir} is a run of rnnkit train {task}; {what} needs a run of "
                        "rnnkit train lm or rnnkit train synthetic")
    return load_run(run_dir, which)


def validation_text(config: dict[str, Any]) -> str:
    """The validation split a language-model run was scored on (read again from its source)."""
    from ..train.lm import lm_splits

    return lm_splits(config).val


def run_batch(run: LoadedRun, size: int, length: int | None) -> Batch:
    """``size`` sequences of the run's validation data: windows of ``length`` tokens of the
    validation text (default: the run's --seq-len), or the synthetic task's validation set
    (its own length)."""
    if run.config.get("task") == "synthetic":
        from ..data.synthetic import Synthetic

        c = run.config
        data = Synthetic(c["dataset"], length=c.get("length"), bits=c.get("bits"),
                         seed=c.get("seed", 0))
        examples = data.fixed("val", size)[""]
        return Batch(examples.x, examples.y)
    length = length or run.config.get("seq_len") or 128
    ids = torch.tensor(run.tokenizer.encode(validation_text(run.config)), dtype=torch.long)
    if len(ids) < length + 1:
        raise UserError(f"the run's validation text has {len(ids)} tokens, fewer than "
                        f"--length {length} + 1; give a smaller --length")
    starts = torch.linspace(0, len(ids) - length - 1, size).long()
    windows = torch.stack([ids[s:s + length + 1] for s in starts.tolist()], 1)
    return Batch(windows[:-1], windows[1:])


def analysis_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "analysis"


def write_json(run_dir: str | Path, name: str, obj: Any) -> Path:
    path = analysis_dir(run_dir) / name
    atomic_write_bytes(path, (to_json(obj, indent=1) + "\n").encode())
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_label(run: LoadedRun) -> str:
    c = run.model.config
    return f"{Path(run.path).parent.parent.name} ({c['cell']}, H={c['hidden']})"


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
