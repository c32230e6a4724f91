"""Checkpoints: safetensors files written atomically, and loading a run directory back.

A checkpoint is ONE safetensors file: the model's tensors under ``model.``, any other tensors
(optimizer moments, carried hidden state, RNG states) under ``extra.``, and a JSON string in the
file's metadata (model class and config, step, counters ...). One file means one ``os.replace``:
a kill at any moment leaves either the old file or the new one, never half of either.
Loading parses tensors and JSON only, so a checkpoint can never run code (no pickle).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..cells import cell_class, is_spec
from ..errors import UserError

FORMAT = "rnnkit-checkpoint"
META_KEY = "rnnkit"
CHECKPOINTS = ("best", "last", "init")
_UMASK = os.umask(0)
os.umask(_UMASK)


def model_classes() -> dict[str, type[nn.Module]]:
    """The model classes a checkpoint may name (imported lazily: models import nothing here)."""
    from ..models.classifier import SequenceClassifier
    from ..models.conditioned import ConditionedLM
    from ..models.forecaster import Forecaster
    from ..models.language_model import LanguageModel
    from ..models.seq2seq import Seq2Seq
    from ..models.synced import SyncedRNN
    from ..models.tagger import SequenceTagger
    from ..models.word2vec import Word2Vec

    return {"LanguageModel": LanguageModel, "Seq2Seq": Seq2Seq, "SyncedRNN": SyncedRNN,
            "SequenceClassifier": SequenceClassifier, "ConditionedLM": ConditionedLM,
            "SequenceTagger": SequenceTagger, "Forecaster": Forecaster, "Word2Vec": Word2Vec}


# ---- JSON that other programs can read --------------------------------------------------

def to_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps(obj, **kwargs)`` with every NaN or infinity (at any depth) written as
    ``null``: Python would write ``NaN``, which is not JSON and which strict readers (jq,
    JavaScript, ``json.loads(..., parse_constant=...)``) refuse. For every ``--json`` print and
    the run directory's JSON files.

    Example:
        >>> to_json({"loss": float("nan"), "curve": [1.5, float("inf")]})
        '{"loss": null, "curve": [1.5, null]}'
    """
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


# ---- writing ------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model: nn.Module, extra: dict[str, torch.Tensor] | None,
                    metadata: dict[str, Any]) -> Path:
    """Write ``model``'s weights, ``extra`` tensors and JSON ``metadata`` to ``path``, atomically.

    The model's class name and ``config`` go into the metadata so ``load_run`` can rebuild it.

    Example:
        >>> import tempfile, torch
        >>> from rnnkit.models.language_model import LanguageModel
        >>> d = tempfile.mkdtemp()
        >>> p = save_checkpoint(f"{d}/last.safetensors", LanguageModel(5, hidden=8), None,
        ...                     {"step": 3})
        >>> load_checkpoint(p).metadata["step"]
        3
    """
    path = Path(path)
    model = getattr(model, "module", model)  # a DistributedDataParallel wrapper
    tensors = {f"model.{k}": _plain(v) for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": _plain(v) for k, v in (extra or {}).items()})
    meta = {"format": FORMAT, "version": 1, "model_class": type(model).__name__,
            "model_config": getattr(model, "config", None), **metadata}
    data = st_save(tensors, metadata={META_KEY: json.dumps(meta)})
    atomic_write_bytes(path, data)
    return path


def _plain(t: torch.Tensor) -> torch.Tensor:
    # a copy on the CPU: tied weights share storage, which safetensors refuses to write twice
    return t.detach().to("cpu", copy=True).contiguous()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over
    ``path`` (and fsync the directory, so the rename itself survives a crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a run dir is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---- reading ------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """A checkpoint file's contents: model weights, extra tensors, metadata."""

    model_state: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    path: Path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; a ``UserError`` names any damage."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass a run directory that training wrote")
    data = path.read_bytes()
    bad = f"{path} is not an rnnkit checkpoint"
    try:
        tensors = st_load(data)
        meta = _header(data).get("__metadata__") or {}
        info = json.loads(meta[META_KEY])
    except Exception as e:  # truncated, a pickle, another program's safetensors file ...
        raise UserError(f"{bad} (not a complete safetensors file with rnnkit metadata: "
                        f"{type(e).__name__}); retrain, or restore it from a copy") from e
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise UserError(f"{bad} (its metadata has no \"format\": \"{FORMAT}\"); pass a "
                        "checkpoint that rnnkit wrote")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Checkpoint(model_state, extra, info, path)


def _header(data: bytes) -> dict[str, Any]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


def build_model(ckpt: Checkpoint) -> nn.Module:
    """The model a checkpoint describes, with its weights loaded (strictly: every key, every
    shape, and every weight a finite number), on the CPU in eval mode."""
    name, config = ckpt.metadata.get("model_class"), ckpt.metadata.get("model_config")
    classes = model_classes()
    if name not in classes or not isinstance(config, dict):
        raise UserError(f"{ckpt.path} holds a model of kind {name!r}, which rnnkit cannot "
                        f"rebuild (known: {', '.join(classes)})")
    for key, t in ckpt.model_state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            # sampling would fail deep inside torch, scoring would print NaN: refuse it here
            bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"{ckpt.path} is damaged: {bad:,} of the {t.numel():,} weights of "
                            f"{key} are NaN or infinite; {_instead(ckpt.path)}")
    if is_spec(config.get("cell")):  # a cell of yours (FILE.py:CLASS): its file, imported
        cell_class(config["cell"])  # here so that a moved file is named as such
    try:
        model = classes[name](**config)
        model.load_state_dict(ckpt.model_state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{ckpt.path} does not match its model description ({first}); the "
                        "file is damaged or from another program: retrain or restore it") from e
    return model.eval()


# ---- a run directory ----------------------------------------------------------------------

@dataclass
class LoadedRun:
    """A trained run: the model (eval mode, CPU), its tokenizer, the resolved config."""

    model: nn.Module
    tokenizer: Any
    config: dict[str, Any]
    path: Path


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """``RUN/checkpoints/{which}.safetensors``, falling back from best to last."""
    if which not in CHECKPOINTS:
        raise UserError(f"unknown checkpoint {which!r}; choose one of {', '.join(CHECKPOINTS)}")
    ckpt_dir = Path(run_dir) / "checkpoints"
    path = ckpt_dir / f"{which}.safetensors"
    if not path.is_file() and which == "best":
        path = ckpt_dir / "last.safetensors"
    if not path.is_file():
        raise UserError(f"{run_dir} has no {which} checkpoint ({path} is missing); the run "
                        "stopped before saving one: train again or --resume it")
    return path


def read_task(run_dir: str | Path) -> str | None:
    """The task a run directory was trained for (``config.json``'s task; None if unreadable:
    ``load_run`` then names the problem)."""
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return config.get("task") if isinstance(config, dict) else None


def load_run(run_dir: str | Path, which: str = "best") -> LoadedRun:
    """Load the model and tokenizer of a run directory (``rnnkit train --out DIR``).

    Example:
        >>> run = load_run("runs/lm")            # doctest: +SKIP
        >>> run.model, run.tokenizer.vocab_size   # doctest: +SKIP
    """
    from ..data.tokenizers import Tokenizer

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"no such run directory: {run_dir}; pass the --out directory of a "
                        "training run")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory; pass the --out directory "
                        "of a training run")
    config_file = run_dir / "config.json"
    if not config_file.is_file() or not (run_dir / "checkpoints").is_dir():
        raise UserError(f"{run_dir} is not an rnnkit run directory (no config.json and "
                        "checkpoints/); pass the --out directory of a training run")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{config_file} is damaged ({e}); restore it or train again") from e
    path = checkpoint_path(run_dir, which)
    model = build_model(load_checkpoint(path))
    tok_file = run_dir / "checkpoints" / "tokenizer.json"
    tokenizer = Tokenizer.load(tok_file) if tok_file.is_file() else None
    _check_belongs(path, getattr(model, "config", None), config, tokenizer)
    return LoadedRun(model, tokenizer, config, path)


def load_task_run(run_dir: str | Path, which: str, model_class: type[nn.Module], what: str,
                  task: str) -> LoadedRun:
    """``load_run`` for a command that needs one kind of model (``what``, trained by
    ``rnnkit train task``); another kind is a ``UserError`` saying so."""
    run = load_run(run_dir, which)
    if not isinstance(run.model, model_class):
        raise UserError(f"{run_dir} holds a {type(run.model).__name__}, not {what}; this needs "
                        f"a run of rnnkit train {task}")
    return run


def _check_belongs(path: Path, model_config: dict[str, Any] | None, config: dict[str, Any],
                   tokenizer: Any) -> None:
    """Refuse a checkpoint that is not this run's (copied from another run): its model must be
    the one config.json describes (``config["model"]``, where training wrote it) and its
    vocabulary the tokenizer's; else its token ids mean other characters, or none at all."""
    run_model = config.get("model") if isinstance(config, dict) else None
    if isinstance(run_model, dict) and isinstance(model_config, dict):
        diff = [k for k in sorted(set(run_model) | set(model_config))
                if run_model.get(k) != model_config.get(k)]
        if diff:
            what = ", ".join(f"{k} {model_config.get(k)!r} (config.json: {run_model.get(k)!r})"
                             for k in diff[:3])
            raise UserError(f"{path} is not this run's model: its {what}; it was copied from "
                            f"another run; {_instead(path)}")
    size = (model_config or {}).get("vocab_size")
    if tokenizer is not None and size is not None and size != tokenizer.vocab_size:
        raise UserError(f"{path} is not this run's model: it predicts {size} tokens but the "
                        f"run's tokenizer has {tokenizer.vocab_size}; it was copied from another "
                        f"run; {_instead(path)}")


def _instead(path: Path) -> str:
    """What to do about a damaged or foreign checkpoint: another of the run's, a copy, or
    training again."""
    others = [n for n in CHECKPOINTS if n != path.stem and n != "init"
              and (path.parent / f"{n}.safetensors").is_file()]
    use = f"use --checkpoint {others[0]}, " if others else ""
    return f"{use}restore the file from a copy, or train again"
