"""`rnnkit bench core`: the engine's training speed and memory against torch.

Seven sections, each measured side by side in one run (``timing.compare``: interleaved, median
of >= 9 rounds) and checked against rnnkit's performance goals (``speed_target``, and the
memory and minGRU goals in their sections; BENCHMARKS.md lists them):

* speed:     LSTM and GRU training steps (forward + backward of a loss on the output sequence)
             for every backend, against ``torch.nn.LSTM/GRU`` and a naive loop of
             ``nn.LSTMCell``/``nn.GRUCell`` (what a user writes for a custom cell);
* no-kernel: the cells torch has no kernel for, ``bptt`` against the ``autograd`` loop;
* memory:    bytes of tensors saved for the backward pass at T = 2000;
* mingru:    minGRU with the parallel scan against ``nn.GRU`` of the same hidden size;
* compiled:  an LSTM training step under ``torch.compile``, rnnkit's against ``torch.nn``'s;
* regularisers: an LSTM training step with recurrent dropout per sequence (0.25) and with
             zoneout (0.1) under ``auto``, against the same LSTM without them, and against
             what a PyTorch user writes for each: ``nn.LSTMCell`` in a loop, masks around it.
* user-cell: the README's cell of your own (``examples/my_cell.py``, JANET with its
             hand-written backward step) on ``bptt`` against its own autograd loop.

Example:
    rnnkit bench core --quick --json /tmp/bench-core.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import rnnkit
from rnnkit.cells import available, cell_class
from rnnkit.errors import UserError

from .timing import compare, machine, saved_tensor_bytes, write_json

SHAPES = ((32, 100, 64, 128), (64, 100, 128, 256), (64, 100, 256, 512), (32, 200, 512, 1024))
QUICK_SHAPES = ((4, 6, 5, 8),)
NO_KERNEL = ("lstm_peephole", "lstm_cifg", "lstm_nofg", "mut1", "mut2", "mut3", "nas",
             "lstm_layernorm", "gru_layernorm")
BACKENDS = ("auto", "native", "bptt", "autograd")
MEMORY = {"T": 2000, "B": 32, "I": 64, "H": 128}
MINGRU = {"Ts": (256, 1024, 4096), "B": 16, "I": 64, "H": 128}
COMPILED = (64, 100, 128, 256)  # B, T, I, H
SECTIONS = ("speed", "no-kernel", "memory", "mingru", "compiled", "regularisers", "user-cell")
REGULARISERS = {"recurrent_dropout": 0.25, "zoneout": 0.1}
REG_COST = 1.2  # the goal: each costs at most 1.2x the same LSTM without it, under auto
KEEP = "rnnkit bptt keep"  # bptt with recompute=False
# the README's user cell, in a source checkout (an installed wheel has no examples/)
USER_CELL = Path(rnnkit.__file__).resolve().parents[2] / "examples" / "my_cell.py"
USER_CELL_GOAL = (256, 1.2)  # at H = 256, bptt >= 1.2x the cell's own autograd loop


# ---- what is timed ----------------------------------------------------------------------------
class CellLoop(nn.Module):
    """The naive baseline: ``nn.LSTMCell`` or ``nn.GRUCell`` called in a Python loop."""

    def __init__(self, kind: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.cell = (nn.LSTMCell if kind == "lstm" else nn.GRUCell)(input_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[1], self.cell.hidden_size)
        state = (h, h) if self.kind == "lstm" else h
        outs = []
        for x_t in x:
            state = self.cell(x_t, state)
            outs.append(state[0] if self.kind == "lstm" else state)
        return torch.stack(outs)


class RegularisedCellLoop(CellLoop):
    """What a PyTorch user writes for recurrent dropout per sequence (Gal) or zoneout: the
    ``nn.LSTMCell`` loop, with m * h(t-1) into the cell, or each state zoned after it."""

    def __init__(self, input_size: int, hidden_size: int, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0) -> None:
        super().__init__("lstm", input_size, hidden_size)
        self.p, self.zoneout = recurrent_dropout, zoneout

    def forward(self, x: Tensor) -> Tensor:
        h = c = x.new_zeros(x.shape[1], self.cell.hidden_size)
        m = None if not self.p else torch.bernoulli(torch.full_like(h, 1 - self.p)) / (1 - self.p)
        outs = []
        for x_t in x:
            h_new, c_new = self.cell(x_t, (h if m is None else h * m, c))
            if self.zoneout:  # each state keeps its old value with probability p
                h = torch.lerp(h_new, h, torch.bernoulli(torch.full_like(h, self.zoneout)))
                c = torch.lerp(c_new, c, torch.bernoulli(torch.full_like(c, self.zoneout)))
            else:
                h, c = h_new, c_new
            outs.append(h)
        return torch.stack(outs)


def _output(module: nn.Module, x: Tensor) -> Tensor:
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


def training_step(module: nn.Module, x: Tensor) -> Callable[[], object]:
    """One training step: forward, a loss on the whole output sequence, backward to every
    parameter (``torch.autograd.grad``, so nothing accumulates between calls)."""
    params = [p for p in module.parameters() if p.requires_grad]

    def step():
        loss = _output(module, x).square().mean()
        return torch.autograd.grad(loss, params)

    return step


def contenders(cell: str, I: int, H: int) -> dict[str, nn.Module]:
    """torch.nn, the naive cell loop, and rnnkit on every backend (for lstm/gru); bptt and the
    autograd loop for the other cells."""
    if cell not in ("lstm", "gru"):
        models = {f"rnnkit {b}": rnnkit.Recurrent(cell, I, H, backend=b)
                  for b in ("bptt", "autograd")}
        if cell_class(cell).can_keep:
            models[KEEP] = rnnkit.Recurrent(cell, I, H, backend="bptt", recompute=False)
            models[KEEP].load_state_dict(models["rnnkit bptt"].state_dict())
        return models
    ref = (nn.LSTM if cell == "lstm" else nn.GRU)(I, H)
    models: dict[str, nn.Module] = {"torch.nn": ref, "cell loop": CellLoop(cell, I, H)}
    for b in BACKENDS:
        models[f"rnnkit {b}"] = rnnkit.Recurrent(cell, I, H, backend=b)
    if cell_class(cell).can_keep:  # bptt keeping the gates: speed for memory
        models[KEEP] = rnnkit.Recurrent(cell, I, H, backend="bptt", recompute=False)
    for name, m in models.items():
        if name.startswith("rnnkit"):
            m.load_state_dict(ref.state_dict())
    return models


# ---- targets ----------------------------------------------------------------------------------
def speed_target(cell: str, impl: str, H: int) -> tuple[str, str, float] | None:
    """(description, reference, threshold) of rnnkit's speed goal for one row, if it has one:
    LSTM and GRU, auto >= 0.95x torch.nn and bptt >= 0.7x (H < 256) or 0.9x torch.nn; the
    cells torch has no kernel for, bptt >= 1.5x (H <= 256) or 1.1x the autograd loop."""
    if cell in ("lstm", "gru"):
        if impl == "rnnkit auto":
            return ">= 0.95x torch.nn", "torch.nn", 0.95
        if impl in ("rnnkit bptt", KEEP):
            return (">= 0.9x torch.nn", "torch.nn", 0.9) if H >= 256 else \
                (">= 0.7x torch.nn", "torch.nn", 0.7)
        return None
    if impl in ("rnnkit bptt", KEEP):
        return (">= 1.5x autograd loop", "rnnkit autograd", 1.5) if H <= 256 else \
            (">= 1.1x autograd loop", "rnnkit autograd", 1.1)
    return None


# ---- sections ---------------------------------------------------------------------------------
def bench_speed(cells, shapes, pairs: int, warmup: int, log, big_pairs: int | None = None
                ) -> list[dict]:
    """``big_pairs`` (if given) replaces ``pairs`` at H >= 1024, where one autograd-loop step
    of a cell without a torch kernel takes seconds."""
    rows = []
    for cell in cells:
        for B, T, I, H in shapes:
            n = big_pairs if big_pairs and H >= 1024 else pairs
            torch.manual_seed(0)
            models = contenders(cell, I, H)
            x = torch.randn(T, B, I)
            r = compare({k: training_step(m, x) for k, m in models.items()}, n, warmup)
            refs = [k for k in ("torch.nn", "cell loop", "rnnkit autograd") if k in models]
            for name, sec in r["seconds"].items():
                row = {"cell": cell, "B": B, "T": T, "I": I, "H": H, "impl": name,
                       "ms": 1000 * sec, "pairs": n}
                if name == "rnnkit auto":
                    row["picked"] = models[name].resolve_backend(x)
                for ref in refs:
                    row[f"vs {ref}"] = r["seconds"][ref] / sec
                _judge(row, speed_target(cell, name, H))
                rows.append(row)
            log(rows[-len(r["seconds"]):])
    return rows


def _judge(row: dict, target: tuple[str, str, float] | None) -> None:
    if target is not None:
        text, ref, threshold = target
        row["target"], row["met"] = text, bool(row[f"vs {ref}"] >= threshold)


def bench_memory(cells, T: int, B: int, I: int, H: int, log) -> list[dict]:
    """Saved-tensor bytes of one forward pass (parameters and input included: everything
    autograd keeps until the backward)."""
    rows = []
    for cell in cells:
        torch.manual_seed(0)
        models = contenders(cell, I, H)
        models = {n: m for n, m in models.items() if n in
                  ("torch.nn", "cell loop", "rnnkit bptt", KEEP, "rnnkit autograd")}
        x = torch.randn(T, B, I)
        sizes = {n: saved_tensor_bytes(lambda m=m, x=x: _output(m, x)) for n, m in models.items()}
        for name, size in sizes.items():
            row = {"cell": cell, "B": B, "T": T, "I": I, "H": H, "impl": name, "MB": size / 2**20,
                   "bytes": size}
            for ref in ("cell loop", "rnnkit autograd"):
                if ref in sizes:
                    row[f"vs {ref}"] = size / sizes[ref]
            if name == "rnnkit bptt":  # the target: at most half the autograd loop's bytes
                refs = [r for r in ("cell loop", "rnnkit autograd") if r in sizes]
                row["target"] = "<= 0.5x autograd loop"
                row["met"] = all(row[f"vs {r}"] <= 0.5 for r in refs)
            rows.append(row)
        log(rows[-len(sizes):])
    return rows


def bench_mingru(Ts, B: int, I: int, H: int, pairs: int, warmup: int, log) -> list[dict]:
    rows = []
    for T in Ts:
        torch.manual_seed(0)
        x = torch.randn(T, B, I)
        models = {"nn.GRU": nn.GRU(I, H), "mingru scan": rnnkit.Recurrent("mingru", I, H,
                                                                           backend="scan")}
        r = compare({n: training_step(m, x) for n, m in models.items()}, pairs, warmup)
        for name, sec in r["seconds"].items():
            row = {"cell": "mingru" if "mingru" in name else "gru", "B": B, "T": T, "I": I,
                   "H": H, "impl": name, "ms": 1000 * sec, "pairs": pairs,
                   "vs nn.GRU": r["ratios"][name]}
            if name == "mingru scan" and T == 1024:
                row["target"], row["met"] = ">= 10x nn.GRU", bool(row["vs nn.GRU"] >= 10)
            rows.append(row)
        log(rows[-2:])
    return rows


def bench_compiled(B: int, T: int, I: int, H: int, pairs: int, warmup: int, log) -> list[dict]:
    """A training step of ``torch.compile(rnnkit.LSTM)`` against ``torch.compile(nn.LSTM)``,
    same weights (the first, warm-up round compiles both)."""
    torch.manual_seed(0)
    ref = nn.LSTM(I, H)
    ours = rnnkit.LSTM(I, H)
    ours.load_state_dict(ref.state_dict())
    models = {"compiled torch.nn": torch.compile(ref), "compiled rnnkit": torch.compile(ours)}
    x = torch.randn(T, B, I)
    r = compare({n: training_step(m, x) for n, m in models.items()}, pairs, max(warmup, 1))
    rows = []
    for name, sec in r["seconds"].items():
        row = {"cell": "lstm", "B": B, "T": T, "I": I, "H": H, "impl": name, "ms": 1000 * sec,
               "pairs": pairs, "vs compiled torch.nn": r["ratios"][name]}
        if name == "compiled rnnkit":
            _judge(row, (">= 1.0x compiled torch.nn", "compiled torch.nn", 1.0))
        rows.append(row)
    log(rows)
    return rows


def bench_regularisers(shapes, pairs: int, warmup: int, log) -> list[dict]:
    """An LSTM training step under ``auto`` with each regulariser against the same LSTM without
    (the goal: at most ``REG_COST`` times its time) and against the cell loop with the same
    regulariser (what a PyTorch user pays); torch.nn without any, for scale."""
    rows = []
    for B, T, I, H in shapes:
        torch.manual_seed(0)
        ref = nn.LSTM(I, H)
        models: dict[str, nn.Module] = {"torch.nn": ref, "rnnkit auto": rnnkit.LSTM(I, H)}
        for name, rate in REGULARISERS.items():
            models[f"rnnkit auto {name} {rate}"] = rnnkit.LSTM(I, H, **{name: rate})
            models[f"cell loop {name} {rate}"] = RegularisedCellLoop(I, H, **{name: rate})
        for m in models.values():  # the same weights everywhere
            if isinstance(m, CellLoop):
                m.cell.load_state_dict(_cell_weights(ref))
            elif m is not ref:
                m.load_state_dict(ref.state_dict())
        x = torch.randn(T, B, I)
        r = compare({k: training_step(m, x) for k, m in models.items()}, pairs, warmup)
        sec = r["seconds"]
        for name, t in sec.items():
            row = {"cell": "lstm", "B": B, "T": T, "I": I, "H": H, "impl": name,
                   "ms": 1000 * t, "pairs": pairs, "vs torch.nn": sec["torch.nn"] / t,
                   "vs rnnkit auto": sec["rnnkit auto"] / t}
            if name.startswith("rnnkit auto "):
                row["picked"] = models[name].resolve_backend(x)
                row["vs same in cell loop"] = sec["cell loop" + name[len("rnnkit auto"):]] / t
                _judge(row, (f"<= {REG_COST}x rnnkit auto's time", "rnnkit auto", 1 / REG_COST))
            rows.append(row)
        log(rows[-len(sec):])
    return rows


def bench_user_cell(shapes, pairs: int, warmup: int, log, path: Path = USER_CELL
                    ) -> list[dict]:
    """A cell of a user's own file with its ``backward_step``: ``bptt`` against the cell's
    autograd loop (what its author pays without rnnkit's engine), same weights."""
    if not path.exists():
        print(f"user-cell: skipped, {path} not found (a source checkout of rnnkit has it)")
        return []
    spec, rows = f"{path}:MyCell", []
    for B, T, I, H in shapes:
        torch.manual_seed(0)
        models = {f"user cell {b}": rnnkit.Recurrent(spec, I, H, backend=b)
                  for b in ("autograd", "bptt")}
        models["user cell bptt"].load_state_dict(models["user cell autograd"].state_dict())
        x = torch.randn(T, B, I)
        r = compare({k: training_step(m, x) for k, m in models.items()}, pairs, warmup)
        for name, sec in r["seconds"].items():
            row = {"cell": "janet", "B": B, "T": T, "I": I, "H": H, "impl": name,
                   "ms": 1000 * sec, "pairs": pairs,
                   "vs autograd loop": r["seconds"]["user cell autograd"] / sec}
            if name == "user cell bptt" and H == USER_CELL_GOAL[0]:
                goal = USER_CELL_GOAL[1]
                _judge(row, (f">= {goal}x autograd loop", "autograd loop", goal))
            rows.append(row)
        log(rows[-len(r["seconds"]):])
    return rows


def _cell_weights(lstm: nn.LSTM) -> dict[str, Tensor]:
    """nn.LSTM's layer-0 weights under nn.LSTMCell's names."""
    return {k.removesuffix("_l0"): v for k, v in lstm.state_dict().items()}


# ---- output -----------------------------------------------------------------------------------
def format_rows(rows: list[dict]) -> str:
    """The rows as an aligned text table (also used for BENCHMARKS.md)."""
    if not rows:
        return ""
    value = "ms" if "ms" in rows[0] else "MB"
    refs = list(dict.fromkeys(k for r in rows for k in r if k.startswith("vs ")))
    head = ["cell", "B", "T", "I", "H", "impl", value, *[f"x {k[3:]}" for k in refs], "target",
            "met"]
    lines = [head]
    for r in rows:
        impl = r["impl"] + (f" ({r['picked']})" if "picked" in r else "")
        met = "" if "met" not in r else ("yes" if r["met"] else "NO")
        lines.append([r["cell"], str(r["B"]), str(r["T"]), str(r["I"]), str(r["H"]), impl,
                      f"{r[value]:.1f}", *[f"{r[k]:.2f}" if k in r else "" for k in refs],
                      r.get("target", ""), met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)


def verdict(targets: dict[str, int], quick: bool) -> str:
    """The closing line: how many goals the rows met, or, for --quick, that its sizes are too
    small to judge them (tiny shapes time Python overhead, not the engines)."""
    if quick:
        return ("smoke run (--quick): these sizes are too small to judge the performance goals; "
                "run `rnnkit bench core` for the verdict")
    return f"performance goals met: {targets['met']} of {targets['total']}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnkit bench core", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Training speed and memory of rnnkit's engines against torch.nn, measured "
        "side by side (interleaved, median of --pairs rounds); prints a table, each row checked "
        "against rnnkit's performance goals (listed in BENCHMARKS.md), and writes JSON.",
        epilog="examples:\n  rnnkit bench core                 the full run (about 15 min on 2 "
        "cores)\n  rnnkit bench core --quick         tiny shapes, 3 rounds (a smoke test)\n"
        "  rnnkit bench core --only speed --shapes 32,100,64,128")
    p.add_argument("--quick", action="store_true", help="tiny shapes and 3 rounds: a smoke "
                   "test, too small to judge the performance goals")
    p.add_argument("--pairs", type=int, default=None, help="timed rounds per row (default 9)")
    p.add_argument("--big-pairs", type=int, default=None, help="rounds for the cells without "
                   "a torch kernel at H >= 1024, where the autograd loop is slow (default: "
                   "--pairs)")
    p.add_argument("--json", default="bench-core.json", help="where to write the results")
    p.add_argument("--shapes", nargs="+", default=None, metavar="B,T,I,H",
                   help="shapes of the speed sections (default: "
                   + " ".join(",".join(map(str, s)) for s in SHAPES) + ")")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="run only these sections")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: "
                   "torch's own choice)")
    p.add_argument("--cells", default=None, metavar="A,B",
                   help="comma-separated cells: only these, in every section that has them")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.cells = None if args.cells is None else [c.strip() for c in args.cells.split(",")
                                                  if c.strip()]
    known = {"lstm", "gru", *NO_KERNEL, "mingru"}
    if args.cells is not None and (not args.cells or set(args.cells) - known):
        bad = sorted(set(args.cells) - known) or [""]
        raise UserError(f"--cells: unknown or empty {bad[0]!r}: choose from "
                        f"{', '.join(sorted(known))}, e.g. --cells mut1,mut2")
    if args.pairs is not None and args.pairs < 1:
        raise UserError(f"--pairs must be >= 1, got {args.pairs}")
    args.shapes = _parse_shapes(args.shapes) if args.shapes else \
        (QUICK_SHAPES if args.quick else SHAPES)
    args.pairs = args.pairs or (3 if args.quick else 9)
    return args


def _parse_shapes(specs: list[str]) -> tuple[tuple[int, ...], ...]:
    shapes = []
    for spec in specs:
        try:
            shape = tuple(int(v) for v in spec.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 4 or min(shape) < 1:
            raise UserError(
                f"--shapes takes B,T,I,H with four positive integers, got {spec!r}: "
                "e.g. --shapes 32,100,64,128")
        shapes.append(shape)
    return tuple(shapes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = 1

    def log(rows):
        print(format_rows(rows), end="\n\n", flush=True)

    def chosen(cells: tuple[str, ...]) -> tuple[str, ...]:
        return cells if args.cells is None else tuple(c for c in cells if c in args.cells)

    result: dict = {"machine": machine(), "command": "rnnkit bench core " + " ".join(
        argv if argv is not None else sys.argv[1:]), "pairs": args.pairs, "quick": args.quick}
    if "speed" in args.only:
        result["speed"] = bench_speed(chosen(("lstm", "gru")), args.shapes, args.pairs, warmup,
                                      log)
    if "no-kernel" in args.only:
        result["no_kernel"] = bench_speed(chosen(NO_KERNEL), args.shapes, args.pairs, warmup,
                                          log, big_pairs=args.big_pairs)
    if "memory" in args.only:
        m = dict(T=20, B=4, I=5, H=8) if args.quick else MEMORY
        result["memory"] = bench_memory(chosen(("lstm", "gru", *NO_KERNEL)), log=log, **m)
    if "mingru" in args.only and "mingru" in available() and chosen(("mingru",)):
        m = dict(Ts=(16, 32), B=4, I=5, H=8) if args.quick else MINGRU
        result["mingru"] = bench_mingru(m["Ts"], m["B"], m["I"], m["H"], args.pairs, warmup, log)
    if "compiled" in args.only and chosen(("lstm",)):
        shape = QUICK_SHAPES[0] if args.quick else COMPILED
        result["compiled"] = bench_compiled(*shape, args.pairs, warmup, log)
    if "regularisers" in args.only and chosen(("lstm",)):
        result["regularisers"] = bench_regularisers(args.shapes, args.pairs, warmup, log)
    if "user-cell" in args.only and args.cells is None:
        result["user_cell"] = bench_user_cell(args.shapes, args.pairs, warmup, log)
    rows = [r for k in ("speed", "no_kernel", "memory", "mingru", "compiled", "regularisers",
                        "user_cell") for r in result.get(k, [])]
    judged = [r for r in rows if "met" in r]
    result["targets"] = {"met": sum(r["met"] for r in judged), "total": len(judged)}
    print(verdict(result["targets"], args.quick))
    print(f"wrote {write_json(args.json, result)}")
    return 0
