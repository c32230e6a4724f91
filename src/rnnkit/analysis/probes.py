"""Unit probes (deck 003, Karpathy's interpretable cells): which single hidden or cell unit of a
character model follows a feature of the text (``features``): its activation over the text,
correlated (Pearson) with the feature, for every unit of every layer; the best unit per feature
is the one with the largest |correlation|. A cell unit is read two ways: as c, which counts (an
indentation or a bracket depth is followed linearly), and as tanh(c), the value deck 003's
pictures colour (Karpathy et al. 2015: "text color corresponds to tanh(c)"), which saturates as
an on/off feature does (inside a string or a comment).

The text is read as ``streams`` contiguous pieces side by side (one batch), each from a zero
state; each piece but the first starts ``WARMUP`` characters early and those steps are
dropped, so that a unit has settled into the text's state when its values start to count. The
pieces are joined back in text order.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..train.checkpoint import read_task
from .features import FEATURES, text_features
from .runs import analysis_dir, load_for_analysis, pyplot, save_figure, validation_text, write_json
from .unrolled import model_inputs, recurrent_of, unroll

STATES = ("hidden", "cell", "tanh(cell)")  # h; c; tanh(c), for a cell with a c
MAX_CHARS = 20_000  # enough for stable correlations, a few seconds on one core
STREAMS = 20
EXCERPT_CHARS = 1500  # the text the report colours by a unit
WARMUP = 200  # characters read before a piece's values count (a line or two of code)


@dataclass
class Unit:
    layer: int
    index: int
    state: str  # one of STATES

    def __str__(self) -> str:
        return f"layer {self.layer} unit {self.index} {self.state}"


@dataclass
class Activations:
    """``values`` (N, U): every unit's activation after each of the N characters of ``text``."""

    text: str
    values: np.ndarray
    units: list[Unit]


@dataclass
class Probe:
    """The best unit for one feature, its correlation, and the runners-up."""

    feature: str
    unit: Unit | None
    correlation: float | None
    top: list[tuple[Unit, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        u = self.unit
        return {"feature": self.feature, "layer": u and u.layer, "index": u and u.index,
                "state": u and u.state, "correlation": self.correlation,
                "top": [{"layer": t.layer, "index": t.index, "state": t.state,
                         "correlation": r} for t, r in self.top]}


def unit_activations(model: nn.Module, tokenizer: Any, text: str, streams: int = STREAMS
                     ) -> Activations:
    """Run a character language model over ``text`` and keep every hidden unit's value after
    every character, and every cell unit's as c and as tanh(c) (the text is cut to a multiple
    of ``streams``)."""
    ids = tokenizer.encode(text)
    if len(ids) != len(text):
        raise UserError("unit probes read one character per step, but this run's tokenizer "
                        f"makes {len(ids):,} tokens of {len(text):,} characters; probe a run "
                        "trained with --tokenizer char")
    streams = max(1, min(streams, len(ids) // (2 * WARMUP)))
    steps = len(ids) // streams
    warm = min(WARMUP, steps) if streams > 1 else 0
    # piece s reads from s * steps - warm (the first from 0, warm steps further) and keeps steps
    starts = [max(0, s * steps - warm) for s in range(streams)]
    x = torch.tensor([ids[a:a + steps + warm] for a in starts]).T  # (T + warm, S)
    keep = torch.tensor([s * steps - a for s, a in enumerate(starts)])  # first kept step
    rows = (keep.unsqueeze(0) + torch.arange(steps).unsqueeze(1))  # (steps, S)
    rnn = recurrent_of(model)
    with torch.no_grad():
        unrolled = unroll(rnn, model_inputs(model, x))
    values, units = [], []
    for k in range(rnn.num_layers):
        for part in range(rnn.num_states):
            v = unrolled.stacked(k, part)  # (T + warm, S, H) -> kept, in text order (N, H)
            v = v.gather(0, rows.unsqueeze(-1).expand(-1, -1, v.shape[-1]))
            v = v.transpose(0, 1).reshape(-1, v.shape[-1])
            hidden, cell, tanh_cell = STATES
            readings = [(hidden, v)] if part == 0 else [(cell, v), (tanh_cell, v.tanh())]
            for state, r in readings:
                values.append(r.float().numpy())
                units += [Unit(k, i, state) for i in range(r.shape[-1])]
    return Activations(text[:steps * streams], np.concatenate(values, 1), units)


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``values`` (N, U) with ``feature`` (N,); NaN
    where either is constant."""
    v = values - values.mean(0)
    f = feature - feature.mean()
    denom = np.sqrt((v**2).sum(0) * (f**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (v * f[:, None]).sum(0) / np.where(denom > 0, denom, 1),
                        np.nan)


def probe(acts: Activations, top: int = 5) -> list[Probe]:
    """The best unit for every feature of the text (a feature constant over the text, such as
    brackets in prose, has none)."""
    feats = text_features(acts.text)
    out = []
    for name in FEATURES:
        r = correlations(acts.values.astype(np.float64), feats[name])
        if np.isnan(r).all():
            out.append(Probe(name, None, None))
            continue
        order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0))[:top]
        best = [(acts.units[i], float(r[i])) for i in order]
        out.append(Probe(name, best[0][0], best[0][1], best))
    return out


def excerpt(acts: Activations, probes: list[Probe], chars: int = EXCERPT_CHARS
            ) -> dict[str, Any]:
    """The start of the text and, for every unit among the best of some feature, its values
    there (3 decimals): what the report's unit picker colours the text with."""
    units = []
    for p in probes:
        units += [u for u, _ in p.top if u not in units]
    return {"text": acts.text[:chars],
            "units": [{"name": str(u), "layer": u.layer, "index": u.index, "state": u.state,
                       "values": np.round(acts.values[:chars, acts.units.index(u)], 3).tolist()}
                      for u in units]}


# ---- pictures ----------------------------------------------------------------------------

def colored_text_html(text: str, values: np.ndarray) -> str:
    """``text`` as HTML spans, each character's background from blue (low) through white to
    red (high) by ``values`` scaled to its largest magnitude (deck 003's pictures)."""
    scale = float(np.abs(values).max()) or 1.0
    spans = []
    for ch, v in zip(text, values / scale):
        shown = "\u21b5\n" if ch == "\n" else html.escape(ch)
        color = f"rgba(220,40,40,{v:.2f})" if v > 0 else f"rgba(40,90,220,{-v:.2f})"
        spans.append(f'<span style="background:{color}">{shown}</span>')
    return "".join(spans)


def units_page(acts: Activations, probes: list[Probe], title: str, chars: int = 2000) -> str:
    """A self-contained HTML page: per feature, the text coloured by its best unit."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif} pre{font-family:monospace;"
             "white-space:pre-wrap;line-height:1.4}</style>", f"<h1>{html.escape(title)}</h1>"]
    for p in probes:
        if p.unit is None:
            continue
        column = acts.units.index(p.unit)
        parts.append(f"<h2>{p.feature}: {p.unit} (r = {p.correlation:+.3f})</h2>")
        parts.append(f"<pre>{colored_text_html(acts.text[:chars], acts.values[:chars, column])}"
                     "</pre>")
    return "\n".join(parts)


def plot_probes(acts: Activations, probes: list[Probe], path: Path, chars: int = 400) -> Path:
    """Per feature: the feature and its best unit's activation over the first characters."""
    plt = pyplot()
    found = [p for p in probes if p.unit is not None]
    fig, axes = plt.subplots(len(found) or 1, 1, figsize=(12, 1.8 * max(len(found), 1)),
                             dpi=100, squeeze=False)
    feats = text_features(acts.text[:chars])
    for ax, p in zip(axes[:, 0], found):
        unit = acts.values[:chars, acts.units.index(p.unit)]
        f = feats[p.feature]
        ax.plot(f / (np.abs(f).max() or 1), color="grey", lw=1, label=p.feature)
        ax.plot(unit / (np.abs(unit).max() or 1), color="C3", lw=1,
                label=f"{p.unit} (r = {p.correlation:+.2f})")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("character")
    return save_figure(fig, path)


# ---- a run directory ----------------------------------------------------------------------

def run_units(run_dir: str | Path, text_path: str | Path | None = None, which: str = "best",
              max_chars: int = MAX_CHARS, streams: int = STREAMS) -> dict[str, Any]:
    """Probe a character language model's units on ``text_path`` (default: the run's
    validation text, its first ``max_chars`` characters); also writes
    ``RUN/analysis/units.json``, ``units.html`` and ``units.png``.

    Example:
        >>> r = run_units("runs/lm")                             # doctest: +SKIP
        >>> [(p["feature"], p["correlation"]) for p in r["features"]][:1]  # doctest: +SKIP
        [('position_in_line', 0.71)]
    """
    task = read_task(run_dir)
    if task is not None and task != "lm":  # load_for_analysis would also let synthetic in
        raise UserError(f"{run_dir} is a run of rnnkit train {task}; unit probes read text "
                        "through a character language model: give a run of rnnkit train lm")
    run = load_for_analysis(run_dir, which, "unit probes")
    if run.config.get("task") != "lm" or run.tokenizer is None:
        raise UserError(f"{run_dir} is not a language model's run; unit probes read text with "
                        "a model of rnnkit train lm")
    text = _read_text(text_path) if text_path is not None else validation_text(run.config)
    text = text[:max_chars]
    if len(text) < 2:
        raise UserError(f"{text_path or 'the validation text'} has fewer than 2 characters; "
                        "give a longer --text")
    acts = unit_activations(run.model, run.tokenizer, text, streams)
    probes = probe(acts)
    result = {"run": str(run_dir), "checkpoint": run.path.stem,
              "text": str(text_path) if text_path is not None else "validation",
              "chars": len(acts.text), "units": len(acts.units),
              "features": [p.as_dict() for p in probes], "excerpt": excerpt(acts, probes)}
    write_json(run_dir, "units.json", result)
    page = units_page(acts, probes, f"units of {Path(run_dir).name}")
    from ..train.checkpoint import atomic_write_bytes

    atomic_write_bytes(analysis_dir(run_dir) / "units.html", page.encode())
    plot_probes(acts, probes, analysis_dir(run_dir) / "units.png")
    return result


def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such text file: {path}; give --text a file to read")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); give "
                        "--text a text file") from e
