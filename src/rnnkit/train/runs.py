"""What every task's run does around the Trainer: its settings, its directory, its messages.

A task module (``train/lm.py``, ``train/seq2seq.py`` ...) has a ``DEFAULTS`` dict of settings
by flag name; ``settings_for`` resolves a run's settings from them, and ``default_out`` names
its directory ``runs/TASK-TIMESTAMP`` (DESIGN.md).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from . import distributed as D
from .config import read_config_file, resolve, resume_settings
from .rundir import RunDir


def default_out(task: str) -> str:
    """``runs/TASK-YYYYMMDD-HHMMSS`` (UTC)."""
    return f"runs/{task}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def settings_for(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The resolved settings of a run: defaults < --config file < ``given``; for ``--resume``
    the stored ``config.json`` plus the budgets given."""
    if given.get("resume"):
        path = Path(given["resume"])
        if given.get("out") and Path(given["out"]) != path:
            raise UserError("give either --out (a new run) or --resume (an earlier run's "
                            "directory), not both")
        RunDir.check(path, resume=True)
        stored = RunDir(path).read_json("config.json")
        if stored.get("task", defaults.get("task")) != defaults.get("task"):
            raise UserError(f"{path} is a {stored.get('task')} run: resume it with rnnkit train "
                            f"{stored.get('task')} --resume {path}")
        return {**resume_settings(stored, given), "out": str(path)}
    s = resolve(defaults, given)
    # the task's default time budget stands in for a budget not given: --steps or --epochs
    # alone is the whole budget (not cut short by a clock the user never set)
    chosen = {**(read_config_file(given["config"]) if given.get("config") else {}), **given}
    if "max_time" not in chosen and (s.get("steps") is not None or s.get("epochs") is not None):
        s["max_time"] = None
    return s


def launch(s: dict[str, Any],
           body: Callable[[dict[str, Any], D.Dist, torch.device], dict[str, Any]]
           ) -> dict[str, Any]:
    """Run ``body(settings, dist, device)``: threads and device as the settings say, and the
    process group when started by torchrun (one GPU per process), torn down after."""
    from .trainer import resolve_device

    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    device = resolve_device(s["device"])
    D.check_gpus(device)
    dist = D.setup(str(device))
    try:
        if dist.active and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        return body(s, dist, device)
    finally:
        D.teardown(dist)


def open_run(s: dict[str, Any], task: str, dist: D.Dist) -> tuple[RunDir, bool]:
    """The run's directory (``--out``, else ``runs/TASK-TIMESTAMP``; ``--resume``'s when
    resuming), checked before anything is written, and whether the run resumes. Sets
    ``s["out"]``."""
    resume = bool(s.get("resume"))
    s["out"] = shared_out(s.get("out") or default_out(task), dist)
    RunDir.check(s["out"], resume)
    return RunDir(s["out"], write=dist.main), resume


def own_dropout(dist: D.Dist, seed: int) -> None:
    """Call after building the model: every rank starts from the same weights (DDP also
    broadcasts them) and draws its own dropout masks from here on."""
    if dist.active:
        torch.manual_seed(seed + 7919 * dist.rank)


def write_run_files(run: RunDir, resume: bool, dist: D.Dist, config: dict[str, Any],
                    save_vocab: Callable[[Path], Any] | None = None) -> None:
    """Create the run directory once every rank has checked its input and the directory;
    a fresh run then writes its vocabulary (rank 0, ``save_vocab(run.checkpoints)``) and
    ``config.json``. Nothing is written before every check has passed."""
    if dist.active:
        torch.distributed.barrier()
    run.make()
    if not resume:
        if dist.main and save_vocab is not None:
            save_vocab(run.checkpoints)
        run.write_json("config.json", config)


def shared_out(out: str, dist: D.Dist) -> str:
    """Rank 0's choice of directory (a default name holds a timestamp that could differ)."""
    if not dist.active:
        return out
    box = [out]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def say(line: str) -> None:
    """A message for the user while a run prepares or ends: stderr, at once."""
    print(line, file=sys.stderr, flush=True)
