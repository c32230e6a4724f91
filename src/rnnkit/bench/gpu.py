"""``rnnkit bench gpu``: the engines on a CUDA GPU, side by side.

Two tables, each a training step (forward, backward of the summed outputs) timed interleaved
(``timing.compare``, medians, CUDA synchronised inside each call):

- ``engines``: every engine that can run LSTM, GRU and two cells cuDNN has no kernel for
  (peephole LSTM, MUT1) against ``torch.nn``'s cuDNN layer where there is one: what a GPU user
  pays for a cell outside torch's three.
- ``scan``: minGRU by the parallel prefix scan against the same cell stepped in a loop (bptt),
  with ``nn.GRU`` (cuDNN) beside it, at growing lengths: the decks' complaint that recurrent
  nets cannot run in parallel over time, answered (Feng et al. 2024).

Without a GPU it says so and exits 2. Example:
    rnnkit bench gpu --json bench-gpu.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from ..errors import UserError
from ..layers import Recurrent
from .timing import compare, machine, write_json

ENGINE_SHAPES = [(64, 100, 256, 256), (64, 100, 512, 1024)]  # B, T, I, H
ENGINE_CELLS = ("lstm", "gru", "lstm_peephole", "mut1")
SCAN_LENGTHS = (256, 1024, 4096)
SCAN_SHAPE = (16, 256, 256)  # B, I, H


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnkit bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=7, help="timed rounds per row (default 7)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds: a smoke test")
    p.add_argument("--json", default="bench-gpu.json", help="where to write the results")
    return p


def step(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One synchronised training step of ``layer`` on ``x``."""
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        y = layer(x)[0]
        y.float().sum().backward()
        torch.cuda.synchronize()
    return run


def contenders(cell: str, B: int, T: int, I: int, H: int) -> dict[str, Callable[[], None]]:
    """The engines that can train ``cell`` at this shape, and cuDNN's layer if torch has one."""
    dev = torch.device("cuda")
    x = torch.randn(T, B, I, device=dev)
    fns = {}
    torch_layer = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell)
    if torch_layer is not None:
        fns["torch.nn (cuDNN)"] = step(torch_layer(I, H).to(dev), x)
    backends = ["native", "bptt", "autograd"] if torch_layer else ["bptt", "autograd"]
    for b in backends:
        fns[b] = step(Recurrent(cell, I, H, backend=b).to(dev), x)
    return fns


def engines(shapes, pairs: int) -> list[dict]:
    rows = []
    for cell in ENGINE_CELLS:
        for shape in shapes:
            r = compare(contenders(cell, *shape), pairs=pairs)
            rows.append({"cell": cell, "shape": list(shape),
                         "ms": {k: 1e3 * v for k, v in r["seconds"].items()},
                         "ratio_to_first": r["ratios"]})
            _print_row(f"{cell:14s} {str(shape):22s}", rows[-1]["ms"])
    return rows


def scan(lengths, shape, pairs: int) -> list[dict]:
    dev, (B, I, H) = torch.device("cuda"), shape
    rows = []
    for T in lengths:
        x = torch.randn(T, B, I, device=dev)
        fns = {"torch.nn.GRU (cuDNN)": step(nn.GRU(I, H).to(dev), x),
               "mingru scan": step(Recurrent("mingru", I, H, backend="scan").to(dev), x),
               "mingru loop (bptt)": step(Recurrent("mingru", I, H, backend="bptt").to(dev), x)}
        r = compare(fns, pairs=pairs)
        rows.append({"T": T, "shape": [B, I, H],
                     "ms": {k: 1e3 * v for k, v in r["seconds"].items()}})
        _print_row(f"mingru T={T:<6d} {str((B, I, H)):14s}", rows[-1]["ms"])
    return rows


def _print_row(label: str, ms: dict[str, float]) -> None:
    print(label + "  " + "  ".join(f"{k}: {v:8.2f} ms" for k, v in ms.items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        raise UserError("rnnkit bench gpu needs a CUDA GPU and torch built with CUDA; this "
                        "machine has none (the CPU benchmarks: rnnkit bench core)")
    shapes = [(4, 8, 16, 16)] if args.quick else ENGINE_SHAPES
    lengths = (16, 64) if args.quick else SCAN_LENGTHS
    pairs = 2 if args.quick else args.pairs
    print(f"# training step, median of {pairs} interleaved rounds on "
          f"{torch.cuda.get_device_name()}")
    result = {"machine": machine(), "pairs": pairs, "engines": engines(shapes, pairs),
              "scan": scan(lengths, (4, 16, 16) if args.quick else SCAN_SHAPE, pairs)}
    print(f"wrote {write_json(args.json, result)}")
    return 0
