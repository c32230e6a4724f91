"""One Trainer for every task: loop, clipping, schedules, metrics, checkpoints, resume,
progress bars, distributed. ``run_lm`` trains a language model end to end."""

from .checkpoint import LoadedRun, load_checkpoint, load_run, save_checkpoint
from .lm import run_lm
from .rundir import RunDir
from .trainer import Task, Trainer, TrainSettings

__all__ = ["LoadedRun", "RunDir", "Task", "TrainSettings", "Trainer", "load_checkpoint",
           "load_run", "run_lm", "save_checkpoint"]
