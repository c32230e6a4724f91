"""ONNX export of a trained run: ``rnnkit export RUN_DIR --onnx FILE``.

Each task's network goes out as the graph a user runs outside Python (onnxruntime, say), the
loops that drive it (sampling, beam search, feeding forecasts back) staying with the user:

    lm          tokens (T, B), h [, c] (layers, B, H) -> logits (T, B, V), h_out [, c_out]:
                one chunk with the recurrent state in and out, so text can be streamed
    generator   tokens (T, B), condition (B,) label ids or (B, F) features, start (B,) bool,
                h [, c] -> logits, h_out [, c_out]; where ``start`` is true the state is the
                condition's initial state (the h, c given for that row are not read)
    classifier  tokens (T, B) or features (T, B, F), lengths (B,) -> logits (B, classes)
    tagger      tokens (T, B) or features (T, B, F), lengths (B,) -> logits (T, B, tags)
    synthetic   inputs (T, B, F) floats or (T, B) symbols -> outputs (T, B, O) or (B, O)
    forecaster  values (T, B, F) scaled, h [, c] -> params (T, B, outputs, P), h_out [, c_out]
                (an ensemble of K: params (K, T, B, outputs, P), states (K, layers, B, H))
    seq2seq     FILE: the encoder, source (S, B), lengths (B,) -> memory, keys, mask, final
                and the decoder's first state h0 [, c0]; FILE with ``.decoder.onnx``: one
                decoder step, previous tokens (B,) with those and the state -> logits (B, V),
                h_out [, c_out], attention (B, S)
    word2vec    ids (N,) -> vectors (N, D) (the input table; ``rnnkit embed --export`` writes
                the vectors as word2vec text)

Time-major as the rest of rnnkit. Batch and time are dynamic axes when every recurrent layer
runs a cell torch has a kernel for (LSTM, GRU, Elman tanh/ReLU): the graph holds ONNX's LSTM,
GRU or RNN operator. Any other cell's steps are recorded one by one, so its graph has a fixed
number of steps: one for the models that carry a state (lm, generator, forecaster: call it
once a step), ``steps`` otherwise (pad to it; classifier, tagger and the seq2seq encoder read
``lengths``, a synthetic model needs exactly that many). Each file's metadata
(``metadata_props``) names the task, the inputs and outputs, the vocabulary file and the labels.

Exported with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): a small
model takes well under a second, the dynamo exporter several seconds, and both give the same
operators for these models. After writing, each graph is run in onnxruntime (when installed)
at another batch size and length than it was exported with, against PyTorch on the same inputs.

Example:
    >>> from rnnkit.export import export_onnx                      # doctest: +SKIP
    >>> export_onnx("runs/demo", "lm.onnx")                        # doctest: +SKIP
    [PosixPath('lm.onnx')]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError

TASKS = ("lm", "generator", "classifier", "tagger", "synthetic", "forecaster", "seq2seq",
         "word2vec")
OPSET = 17
# the example a graph is recorded on, and the other shape it is checked at
EXPORT_SHAPE, CHECK_SHAPE = (3, 6), (2, 9)  # (batch, time)
DECODER_SUFFIX = ".decoder.onnx"


@dataclass
class Graph:
    """One ONNX file to write: a module, how to make its inputs, their names and meaning."""

    suffix: str  # "" for FILE itself, else the name FILE gets instead of its .onnx
    module: nn.Module
    make: Callable[[int, int], tuple[Tensor, ...]]  # (batch, time) -> example inputs
    inputs: dict[str, str]  # name -> meaning, in the module's argument order
    outputs: dict[str, str]
    dynamic: dict[str, dict[int, str]]
    what: str  # the graph's part: "forward", "step", "encoder", "decoder step"
    steps: int | None = None  # a fixed number of time steps, or None: dynamic
    compare: Callable[[list[Tensor], list[Tensor], tuple[Tensor, ...]],
                      list[tuple[Tensor, Tensor]]] | None = None  # which parts must agree
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = list(self.inputs)  # the module's arguments, all of them


@dataclass
class Exported:
    """A file written: its path, graph, inputs and outputs, and onnxruntime's difference."""

    path: Path
    task: str
    graph: str
    inputs: list[str]
    outputs: list[str]
    steps: int | None
    max_abs_diff: float | None  # None: onnxruntime not installed, not checked

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "task": self.task, "graph": self.graph,
                "inputs": self.inputs, "outputs": self.outputs,
                "time_steps": "dynamic" if self.steps is None else self.steps,
                "max_abs_diff": self.max_abs_diff}


def export_onnx(run_dir: str | Path, path: str | Path, which: str = "best",
                steps: int = 64) -> list[Path]:
    """Write the run's network as ONNX to ``path`` (and, for seq2seq, the decoder step beside
    it, ``.decoder.onnx``); each is checked in onnxruntime when it is installed. The paths
    written, in order. ``steps``: the fixed length of a graph whose cell torch has no kernel
    for (module doc)."""
    return [e.path for e in export(run_dir, path, which, steps)]


def export(run_dir: str | Path, path: str | Path, which: str = "best", steps: int = 64,
           check: bool = True, atol: float = 1e-5) -> list[Exported]:
    """``export_onnx`` with what was written: each file's inputs, outputs and the largest
    difference between onnxruntime's outputs and PyTorch's (``check``; more than ``atol`` is
    an error, and the file is removed)."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise UserError(f"--onnx {path}: name the file with an .onnx suffix (e.g. model.onnx)")
    if path.is_dir():
        raise UserError(f"--onnx {path} is a directory; name a file, e.g. {path}/model.onnx")
    if not path.parent.is_dir():
        raise UserError(f"--onnx {path}: its directory {path.parent} does not exist; create it "
                        "first")
    if not isinstance(steps, int) or steps < 1:
        raise UserError(f"--steps must be a positive integer, got {steps!r}")
    onnx = _require("onnx")
    task, graphs, meta = _graphs(run_dir, which, steps)
    targets = [path if not g.suffix else path.with_name(path.name[:-5] + g.suffix)
               for g in graphs]
    if len(graphs) > 1:  # the encoder names the decoder step's file beside it
        graphs[0].meta["rnnkit.decoder"] = targets[1].name
    done = []
    for g, target in zip(graphs, targets):
        _write(g, target, onnx, {**meta, **g.meta, "rnnkit.task": task,
                                 "rnnkit.graph": g.what})
        diff = _check(g, target, atol) if check else None
        done.append(Exported(target, task, g.what, list(g.inputs), list(g.outputs), g.steps,
                             diff))
    return done


# ---- writing and checking --------------------------------------------------------------------

def _require(name: str):
    try:
        return __import__(name)
    except ImportError as e:
        raise UserError(f"ONNX export needs the {name} package: pip install onnx onnxruntime"
                        ) from e


def _write(g: Graph, target: Path, onnx, meta: dict[str, str]) -> None:
    """Export ``g`` to ``target`` (through a temporary name: a failure leaves no half file),
    with the metadata."""
    from .train.checkpoint import atomic_write_bytes

    batch, time = EXPORT_SHAPE
    args = g.make(batch, g.steps or time)
    g.module.eval()
    tmp = target.with_name(target.name + ".tmp")
    dynamic = {k: v for k, v in g.dynamic.items() if k in g.inputs or k in g.outputs}
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_stderr():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes it records
            torch.onnx.export(g.module, args, str(tmp), input_names=list(g.inputs),
                              output_names=list(g.outputs), dynamic_axes=dynamic,
                              opset_version=OPSET, dynamo=False)
        model = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    # an input the graph does not read (the memory's keys without attention ...) is dropped
    read = {i.name for i in model.graph.input}
    g.inputs = {k: v for k, v in g.inputs.items() if k in read}
    meta = {**meta, "rnnkit.inputs": json.dumps(g.inputs), "rnnkit.outputs": json.dumps(g.outputs),
            "rnnkit.time_steps": "dynamic" if g.steps is None else str(g.steps)}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "rnnkit"
    atomic_write_bytes(target, model.SerializeToString())


@contextmanager
def _quiet_stderr():
    """Silence what torch's C++ side prints while exporting (notes on the shape inference of
    packed sequences, which onnxruntime's check below covers); errors still raise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to silence
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run_onnx(path: str | Path, feeds: dict[str, Tensor]) -> list[Tensor]:
    """The outputs of the ONNX file ``path`` in onnxruntime on ``feeds`` (name -> tensor;
    names the graph does not read are left out)."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    given = {k: v.detach().cpu().numpy() for k, v in feeds.items() if k in names}
    return [torch.from_numpy(out) for out in session.run(None, given)]


def _check(g: Graph, target: Path, atol: float) -> float | None:
    """The largest |onnxruntime - PyTorch| over the outputs at ``CHECK_SHAPE``; more than
    ``atol`` removes the file and raises."""
    try:
        _require("onnxruntime")
    except UserError:
        return None
    batch, time = CHECK_SHAPE
    args = g.make(batch, g.steps or time)
    with torch.no_grad():
        want = _flat(g.module(*args))
    got = run_onnx(target, dict(zip(g.names, args)))
    pairs = g.compare(got, want, args) if g.compare else list(zip(got, want))
    diff = max((float((a.double() - b.double()).abs().max()) if a.numel() else 0.0)
               for a, b in pairs)
    if not diff <= atol:
        target.unlink(missing_ok=True)
        raise UserError(f"the exported {g.what} graph differs from PyTorch by {diff:.3g} in "
                        f"onnxruntime (more than {atol:g}); please report it")
    return diff


def _flat(obj) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    return [t for item in obj for t in _flat(item)]


# ---- the graphs of each task -------------------------------------------------------------------

def _graphs(run_dir: str | Path, which: str, steps: int
            ) -> tuple[str, list[Graph], dict[str, str]]:
    """The task, its graphs and the metadata every file of it carries."""
    from .train.checkpoint import checkpoint_path, load_run, read_task

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no such run directory: {run_dir}; pass the --out directory of a "
                        "training run")
    task = read_task(run_dir)
    if task is None and (run_dir / "config.json").is_file():
        task = "lm"  # runs from before config.json named the task
    if task is None:
        raise UserError(f"{run_dir} is not an rnnkit run directory (no readable config.json); "
                        "pass the --out directory of a training run")
    if task not in TASKS:
        raise UserError(f"{run_dir} is a {task} run, which rnnkit export does not know; it "
                        f"exports runs of {', '.join(TASKS)}")
    ckpt = checkpoint_path(run_dir, which)  # a UserError when the run has none
    meta = {"rnnkit.run": str(run_dir.resolve()), "rnnkit.checkpoint": ckpt.name}
    if task == "word2vec":
        from .embeddings import load_embeddings

        emb = load_embeddings(run_dir, which)
        meta["rnnkit.vocabulary"] = _vocab(run_dir, "vocab.json")
        return task, [_word2vec(emb.vectors)], meta
    if task == "synthetic":
        run = load_run(run_dir, which)
    else:  # the task's own loader: its checks of the vocabulary, labels, scaling ...
        from .api import load

        run = load(run_dir, which)
    model, config = run.model, run.config
    # what reading the inputs needs besides the vocabulary
    for key in ("reverse", "max_length", "tokenizer", "tokens"):
        if config.get(key) is not None and task in ("seq2seq", "classifier", "tagger"):
            meta[f"rnnkit.{key}"] = json.dumps(config[key])
    _traceable(model)
    fixed = None if _native(model) else steps
    if task in ("lm", "generator", "forecaster") and fixed is not None:
        fixed = 1  # a model with a state: one step a call
    if task == "lm":
        meta["rnnkit.vocabulary"] = _vocab(run_dir, "tokenizer.json")
        return task, [_lm(model, fixed)], meta
    if task == "generator":
        meta["rnnkit.vocabulary"] = _vocab(run_dir, "tokenizer.json")
        meta["rnnkit.labels"] = json.dumps(config.get("labels") or [])
        return task, [_generator(model, fixed)], meta
    if task in ("classifier", "tagger"):
        tagger = task == "tagger"
        meta["rnnkit.vocabulary"] = (_vocab(run_dir, "tagger-vocab.json" if tagger else
                                            "tokenizer.json")
                                     if model.config["vocab_size"] is not None else "")
        meta["rnnkit.labels"] = json.dumps(config.get("tags" if tagger else "classes") or [])
        return task, [_labeller(model, tagger, fixed)], meta
    if task == "synthetic":
        meta["rnnkit.vocabulary"] = ""
        return task, [_synthetic(model, fixed)], meta
    if task == "forecaster":
        meta["rnnkit.vocabulary"] = ""
        meta["rnnkit.scaling"] = json.dumps(config.get("scaling") or {})
        return task, [_forecaster(model, fixed)], meta
    meta["rnnkit.vocabulary"] = _vocab(run_dir, "vocab.json")
    return task, _seq2seq(model, fixed), meta


def _vocab(run_dir: Path, name: str) -> str:
    return str((run_dir / "checkpoints" / name).resolve())


def _recurrent(model: nn.Module) -> list[nn.Module]:
    from .layers import Recurrent

    return [m for m in model.modules() if isinstance(m, Recurrent)]


def _traceable(model: nn.Module) -> None:
    """A run trained with --backend bptt or scan runs auto's recordable path (same weights)."""
    for layer in _recurrent(model):
        if layer.backend in ("bptt", "scan"):
            layer.backend = "auto"


def _native(model: nn.Module) -> bool:
    """Whether every recurrent layer runs one torch kernel under export (dynamic time)."""
    return all(not layer._native_obstacles(None) for layer in _recurrent(model))


def _state_names(n: int, suffix: str = "") -> list[str]:
    return [f"{s}{suffix}" for s in ("h", "c")[:n]]


def _time_axes(steps: int | None) -> dict[int, str]:
    return {1: "batch"} if steps is not None else {0: "time", 1: "batch"}


def _tokens(vocab: int) -> Callable[[int, int], Tensor]:
    g = torch.Generator().manual_seed(0)
    return lambda b, t: torch.randint(vocab, (t, b), generator=g)


class _Stateful(nn.Module):
    """``model(x, state)`` with the state as separate tensors in and out (ONNX has no tuples)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, *state: Tensor):
        out, new = self.model(x, state if len(state) > 1 else state[0])
        return (out, *(new if isinstance(new, tuple) else (new,)))


def _lm(model: nn.Module, steps: int | None) -> Graph:
    rnn, n = model.rnn, model.rnn.num_states
    tokens = _tokens(model.vocab_size)
    shape = f"({rnn.num_layers}, batch, {rnn.hidden_size})"

    def make(b: int, t: int):
        return (tokens(b, t), *(torch.randn(rnn.num_layers, b, rnn.hidden_size)
                                for _ in range(n)))

    states = dict(zip(_state_names(n), ("hidden state " + shape + ", zeros to start",
                                        "cell state " + shape + ", zeros to start")))
    dynamic = {"tokens": _time_axes(steps), "logits": _time_axes(steps),
               **{s: {1: "batch"} for s in [*_state_names(n), *_state_names(n, "_out")]}}
    return Graph("", _Stateful(model), make,
                 {"tokens": "int64 (time, batch) token ids of the vocabulary", **states},
                 {"logits": f"(time, batch, {model.vocab_size}) next-token scores",
                  **{f"{k}_out": f"{k} after the chunk" for k in states}},
                 dynamic, "step", steps)


class _Generator(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, condition: Tensor, start: Tensor, *state: Tensor):
        first = self.model.initial_state(condition)
        first = first if isinstance(first, tuple) else (first,)
        state = tuple(torch.where(start[None, :, None], f, s) for f, s in zip(first, state))
        out, new = self.model(x, state if len(state) > 1 else state[0], condition)
        return (out, *(new if isinstance(new, tuple) else (new,)))


def _generator(model: nn.Module, steps: int | None) -> Graph:
    rnn, n, cfg = model.rnn, model.rnn.num_states, model.config
    tokens = _tokens(model.vocab_size)
    labels = cfg["num_labels"] is not None
    g = torch.Generator().manual_seed(1)

    def make(b: int, t: int):
        cond = (torch.randint(cfg["num_labels"], (b,), generator=g) if labels
                else torch.randn(b, cfg["features"], generator=g))
        start = torch.arange(b) % 2 == 0  # both kinds of row in every check
        return (tokens(b, t), cond, start, *(torch.randn(rnn.num_layers, b, rnn.hidden_size)
                                             for _ in range(n)))

    shape = f"({rnn.num_layers}, batch, {rnn.hidden_size})"
    states = dict(zip(_state_names(n), (f"hidden state {shape}", f"cell state {shape}")))
    cond = ("int64 (batch,) label ids (rnnkit.labels)" if labels
            else f"float (batch, {cfg['features']}) feature vectors")
    dynamic = {"tokens": _time_axes(steps), "logits": _time_axes(steps),
               "condition": {0: "batch"}, "start": {0: "batch"},
               **{s: {1: "batch"} for s in [*_state_names(n), *_state_names(n, "_out")]}}
    return Graph("", _Generator(model), make,
                 {"tokens": "int64 (time, batch) token ids of the vocabulary",
                  "condition": cond,
                  "start": "bool (batch,): true on a text's first chunk (the state then starts "
                           "from the condition; the h, c given are not read)", **states},
                 {"logits": f"(time, batch, {model.vocab_size}) next-token scores",
                  **{f"{k}_out": f"{k} after the chunk" for k in states}},
                 dynamic, "step", steps)


def _sequence_input(model: nn.Module, g: torch.Generator
                    ) -> tuple[str, str, Callable[[int, int], Tensor]]:
    """(name, meaning, maker) of the input of a classifier or tagger: ids or features."""
    cfg = model.config
    if cfg["vocab_size"] is not None:
        return ("tokens", "int64 (time, batch) token ids of the vocabulary, padded",
                lambda b, t: torch.randint(cfg["vocab_size"], (t, b), generator=g))
    f = cfg["input_features"]
    return ("features", f"float (time, batch, {f}) feature vectors, padded",
            lambda b, t: torch.randn(t, b, f, generator=g))


def _lengths(b: int, t: int) -> Tensor:
    """Ragged lengths with the longest as long as the batch (so the masked path is traced)."""
    return torch.tensor([t if i % 2 == 0 else max(1, t - 1 - i // 2) for i in range(b)])


def _labeller(model: nn.Module, tagger: bool, steps: int | None) -> Graph:
    g = torch.Generator().manual_seed(0)
    name, meaning, x = _sequence_input(model, g)
    classes = model.config["num_tags" if tagger else "num_classes"]

    def make(b: int, t: int):
        return x(b, t), _lengths(b, t)

    def compare(got, want, args):  # a tagger's scores at padded steps mean nothing
        if not tagger:
            return list(zip(got, want))
        keep = torch.arange(args[0].shape[0])[:, None] < args[1][None]
        return [(got[0][keep], want[0][keep])]

    out = ({0: "time", 1: "batch"} if steps is None else {1: "batch"}) if tagger \
        else {0: "batch"}
    return Graph("", model, make,
                 {name: meaning, "lengths": "int64 (batch,) each sequence's length, 1..time"},
                 {"logits": (f"(time, batch, {classes}) tag scores (padded steps: meaningless)"
                             if tagger else f"(batch, {classes}) class scores")},
                 {name: _time_axes(steps), "lengths": {0: "batch"}, "logits": out},
                 "forward", steps, compare)


def _synthetic(model: nn.Module, steps: int | None) -> Graph:
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    if cfg["embed"]:
        def make(b: int, t: int):
            return (torch.randint(cfg["inputs"], (t, b), generator=g),)
        meaning = f"int64 (time, batch) symbols 0..{cfg['inputs'] - 1}"
    else:
        def make(b: int, t: int):
            return (torch.randint(2, (t, b, cfg["inputs"]), generator=g).float(),)
        meaning = f"float (time, batch, {cfg['inputs']}) inputs (bits, values)"
    last = cfg["readout"] == "last"
    return Graph("", model, make, {"inputs": meaning},
                 {"outputs": f"({'batch' if last else 'time, batch'}, {cfg['outputs']}) scores"},
                 {"inputs": _time_axes(steps),
                  "outputs": {0: "batch"} if last else _time_axes(steps)},
                 "forward", steps)


class _Forecaster(nn.Module):
    """A forecaster (or an ensemble, its members' states stacked first) with its state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, *state: Tensor):
        if self.model.members is None:
            p, new = self.model(x, state if len(state) > 1 else state[0])
            return (p, *(new if isinstance(new, tuple) else (new,)))
        each = [tuple(s[k] for s in state) for k in range(len(self.model.members))]
        p, news = self.model(x, [e if len(e) > 1 else e[0] for e in each])
        news = [n if isinstance(n, tuple) else (n,) for n in news]
        return (p, *(torch.stack(parts) for parts in zip(*news)))


def _forecaster(model: nn.Module, steps: int | None) -> Graph:
    cfg = model.config
    first = model if model.members is None else model.members[0]
    rnn, n, k = first.rnn, first.rnn.num_states, cfg.get("members", 1)
    lead = (k,) if model.members is not None else ()
    g = torch.Generator().manual_seed(0)

    def make(b: int, t: int):
        return (torch.randn(t, b, cfg["input_features"], generator=g),
                *(torch.randn(*lead, rnn.num_layers, b, rnn.hidden_size, generator=g)
                  for _ in range(n)))

    axis = 1 + len(lead)
    shape = f"({'members, ' if lead else ''}{rnn.num_layers}, batch, {rnn.hidden_size})"
    states = dict(zip(_state_names(n), (f"hidden state {shape}, zeros to start",
                                        f"cell state {shape}, zeros to start")))
    lags = (f"; the linear part (--lags {cfg['lags']}) reads zeros before the first step"
            if cfg.get("lags") else "")
    params = {"gaussian": "mean, scale", "student": "mean, scale, df", "point": "mean"}
    out_time = _time_axes(steps) if not lead else {k + 1: v for k, v in
                                                   _time_axes(steps).items()}
    return Graph("", _Forecaster(model), make,
                 {"values": f"float (time, batch, {cfg['input_features']}) scaled values "
                            f"(rnnkit.scaling){lags}", **states},
                 {"params": f"({'members, ' if lead else ''}time, batch, outputs, parameters) "
                            f"raw head outputs ({params[cfg['head']]} before their links, see "
                            "rnnkit.models.forecaster)",
                  **{f"{s}_out": f"{s} after the chunk" for s in states}},
                 {"values": _time_axes(steps), "params": out_time,
                  **{s: {axis: "batch"} for s in [*_state_names(n), *_state_names(n, "_out")]}},
                 "step", steps)


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, lengths: Tensor):
        enc = self.model.encode(src, lengths)
        states = self.model.initial_state(enc)
        stacked = tuple(torch.stack(parts) for parts in zip(*states))  # (layers, B, H) each
        return (enc.memory, enc.keys, enc.mask, enc.final, *stacked)


class _DecoderStep(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, y_prev: Tensor, memory: Tensor, keys: Tensor, mask: Tensor, final: Tensor,
                *state: Tensor):
        from .models.seq2seq import Encoded

        states = [tuple(s[k] for s in state) for k in range(len(self.model.decoder))]
        logits, new, weights = self.model.step(Encoded(memory, keys, mask, final), y_prev,
                                               states)
        out = (logits, *(torch.stack(parts) for parts in zip(*new)))
        return out if weights is None else (*out, weights)


def _seq2seq(model: nn.Module, steps: int | None) -> list[Graph]:
    from .data.vocab import BOS_ID, EOS_ID

    cfg = model.config
    n = model.decoder[0].num_states
    g = torch.Generator().manual_seed(0)
    encoder = _Encoder(model).eval()

    def make_encoder(b: int, t: int):
        return torch.randint(4, cfg["source_vocab"], (t, b), generator=g), _lengths(b, t)

    def make_step(b: int, t: int):
        with torch.no_grad():
            memory, keys, mask, final, *state = encoder(*make_encoder(b, t))
        y = torch.randint(cfg["target_vocab"], (b,), generator=g)
        return (y, memory, keys, mask, final, *(s + 0.1 * torch.randn(s.shape, generator=g)
                                                for s in state))

    width = f"({cfg['layers']}, batch, {cfg['hidden']})"
    enc_out = {"memory": "(batch, source, M) encoder states",
               "keys": "(batch, source, K) the memory's part of the attention scores",
               "mask": "bool (batch, source): true at real source positions",
               "final": "(batch, M) the last real step's encoder state",
               **dict(zip(_state_names(n, "0"), (f"decoder hidden state {width} to start",
                                                  f"decoder cell state {width} to start")))}
    bs = {0: "batch", 1: "source"} if steps is None else {0: "batch"}
    states = dict(zip(_state_names(n), (f"decoder hidden state {width}",
                                        f"decoder cell state {width}")))
    step_out = {"logits": f"(batch, {cfg['target_vocab']}) next-token scores",
                **{f"{s}_out": f"{s} after the step" for s in states}}
    if model.attention is not None:
        step_out["attention"] = "(batch, source) the attention weights of this step"
    shared = {"memory": bs, "keys": bs, "mask": bs, "final": {0: "batch"}}
    enc = Graph("", encoder, make_encoder,
                {"source": "int64 (source, batch) token ids of the source vocabulary, padded",
                 "lengths": "int64 (batch,) each source's length"}, enc_out,
                {"source": _time_axes(steps), "lengths": {0: "batch"}, **shared,
                 **{s: {1: "batch"} for s in _state_names(n, "0")}},
                "encoder", steps,
                meta={"rnnkit.bos_id": str(BOS_ID), "rnnkit.eos_id": str(EOS_ID)})
    step = Graph(DECODER_SUFFIX, _DecoderStep(model).eval(), make_step,
                 {"y_prev": "int64 (batch,) the previous target token (<s> first)",
                  **{k: f"{v}, from the encoder" for k, v in enc_out.items()
                     if k in ("memory", "keys", "mask", "final")}, **states},
                 step_out,
                 {"y_prev": {0: "batch"}, **shared,
                  **{s: {1: "batch"} for s in [*_state_names(n), *_state_names(n, "_out")]},
                  "logits": {0: "batch"}, "attention": bs},
                 "decoder step", steps)
    return [enc, step]


class _Lookup(nn.Module):
    def __init__(self, vectors: Tensor):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(vectors.float(), freeze=True)

    def forward(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)


def _word2vec(vectors: Tensor) -> Graph:
    g = torch.Generator().manual_seed(0)
    return Graph("", _Lookup(vectors), lambda b, t: (torch.randint(len(vectors), (b * t,),
                                                                   generator=g),),
                 {"ids": "int64 (n,) word ids: indices into the vocabulary's words"},
                 {"vectors": f"(n, {vectors.shape[1]}) the words' vectors"},
                 {"ids": {0: "n"}, "vectors": {0: "n"}}, "lookup")
