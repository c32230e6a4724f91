"""A run directory: where a training run keeps everything (DESIGN.md).

    RUN/config.json       the resolved settings
    RUN/metrics.jsonl     one JSON line per logged step and per evaluation
    RUN/samples.txt       what the model wrote during training (language models)
    RUN/summary.json      the final metrics
    RUN/loss.png          the loss curves
    RUN/checkpoints/      {init,last,best}.safetensors, tokenizer.json

The append-only logs (metrics.jsonl, samples.txt) are flushed before each checkpoint, and the
checkpoint records their sizes: a resumed run cuts them back to those sizes, so a line written
after the checkpoint (and written again by the resumed run) never appears twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from .checkpoint import atomic_write_bytes, to_json

LOGS = ("metrics.jsonl", "samples.txt")


class RunDir:
    """The files of one run; only the writing process (rank 0) makes one with ``write=True``.

    Example:
        >>> import tempfile
        >>> run = RunDir.create(tempfile.mkdtemp() + "/run", resume=False)
        >>> run.log_metrics({"step": 1, "loss": 2.5}); run.log_sizes()["metrics.jsonl"]
        25
    """

    def __init__(self, path: str | Path, write: bool = True):
        self.path = Path(path)
        self.write = write
        self.checkpoints = self.path / "checkpoints"

    @staticmethod
    def check(path: str | Path, resume: bool) -> None:
        """Refuse to start over a non-empty directory, or to resume one that is not a run."""
        path = Path(path)
        if resume:
            if not (path / "config.json").is_file():
                what = "does not exist" if not path.exists() else "is not a run directory"
                raise UserError(f"cannot resume {path}: it {what} (no config.json); pass the "
                                "--out directory of an earlier run")
        elif path.is_file() or (path.is_dir() and any(path.iterdir())):
            raise UserError(f"{path} already exists and is not empty; choose another --out, "
                            f"or continue that run with --resume {path}")

    @classmethod
    def create(cls, path: str | Path, resume: bool, write: bool = True) -> RunDir:
        """A new run directory (refusing a non-empty one), or an existing one to resume."""
        cls.check(path, resume)
        run = cls(path, write)
        run.make()
        return run

    def make(self) -> None:
        """Create the directories; drop temporaries a killed run left (never a finished file)."""
        if self.write:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            for d in (self.path, self.checkpoints):
                for tmp in d.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        if self.write:
            text = to_json(obj, indent=2, sort_keys=False) + "\n"  # NaN as null: valid JSON
            atomic_write_bytes(self.path / name, text.encode())

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def append(self, name: str, text: str) -> None:
        if self.write:
            with open(self.path / name, "a", encoding="utf-8") as f:
                f.write(text)

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.append("metrics.jsonl", json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        f = self.path / "metrics.jsonl"
        if not f.is_file():
            return []
        return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]

    def log_sizes(self) -> dict[str, int]:
        """Bytes in each log now, synced to disk (recorded in the next checkpoint)."""
        sizes = {}
        for name in LOGS:
            f = self.path / name
            sizes[name] = f.stat().st_size if f.is_file() else 0
            if self.write and sizes[name]:
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return sizes

    def truncate_logs(self, sizes: dict[str, int]) -> None:
        """Cut the logs back to the sizes a checkpoint recorded (a resumed run rewrites the
        rest)."""
        if not self.write:
            return
        for name in LOGS:
            f, size = self.path / name, int(sizes.get(name, 0))
            have = f.stat().st_size if f.is_file() else 0
            if have < size:
                raise UserError(f"{f} is shorter ({have} bytes) than its checkpoint recorded "
                                f"({size}); the run directory was edited: start a new run")
            if f.is_file():
                os.truncate(f, size)
