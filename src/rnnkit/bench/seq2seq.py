"""`rnnkit bench seq2seq`: one training step of rnnkit's ``Seq2Seq`` against a plain PyTorch
script of the same model, side by side.

The plain script is what a tutorial writes: ``nn.LSTM`` (bidirectional, packed) as the
encoder, ``nn.LSTMCell`` as the decoder, and a Python loop over the decoder steps with the same
attention. It gets rnnkit's weights, and the two losses must agree before anything is timed:
the same model, the same numbers, only the implementation differs. A step is forward,
backward and AdamW's update on one batch, timed interleaved (``timing.compare``). The goal:
rnnkit at least as fast (ratio >= 1.0) for every attention.

Shapes: ``addition`` (sources of ~7 characters, 4 target tokens) and ``dates`` (~25 and 11),
at the sizes of the issue's addition benchmark (128 units) and the seq2seq default (256).

Example:
    rnnkit bench seq2seq --quick                 # a smoke run, seconds
    rnnkit bench seq2seq --json seq2seq.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..data.vocab import PAD_ID
from ..models.seq2seq import Seq2Seq
from .timing import compare, machine, write_json

SHAPES = {"addition": (7, 4), "dates": (25, 11)}  # (source, target) tokens
ATTENTIONS = ("bahdanau", "general", "none")
SIZES = (128, 256)
VOCAB = (20, 14)
BATCH = 64
GOAL = 1.0


class PlainSeq2Seq(nn.Module):
    """The plain PyTorch script's model: rnnkit's ``Seq2Seq`` (lstm, one layer, bidirectional)
    written the usual way, with its parameters under the same names."""

    def __init__(self, attention: str, embed: int, hidden: int):
        super().__init__()
        S, T = VOCAB
        self.kind = attention
        self.source_embedding = nn.Embedding(S, embed, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(T, embed, padding_idx=PAD_ID)
        self.encoder = nn.LSTM(embed, hidden, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        feeds = attention in ("bahdanau", "none")
        self.decoder = nn.LSTMCell(embed + (2 * hidden if feeds else 0), hidden)
        if attention == "bahdanau":
            self.query_layer = nn.Linear(hidden, hidden, bias=False)
            self.memory_layer = nn.Linear(2 * hidden, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)
        elif attention == "general":
            self.memory_layer = nn.Linear(2 * hidden, hidden, bias=False)
        self.combine = nn.Linear(3 * hidden, hidden)
        self.output = nn.Linear(hidden, T)

    def forward(self, src: Tensor, lengths: Tensor, y_in: Tensor) -> Tensor:
        packed = pack_padded_sequence(self.source_embedding(src), lengths, enforce_sorted=False)
        out, (h, _) = self.encoder(packed)
        memory = pad_packed_sequence(out, total_length=src.shape[0])[0].transpose(0, 1)
        final = torch.cat([h[0], h[1]], -1)
        mask = torch.arange(src.shape[0])[None, :] < lengths[:, None]
        s = torch.tanh(self.bridge(final))
        c = torch.zeros_like(s)
        keys = self.memory_layer(memory) if self.kind != "none" else None
        logits = []
        for t in range(y_in.shape[0]):
            x = self.target_embedding(y_in[t])
            if self.kind == "bahdanau":
                e = self.v(torch.tanh(self.query_layer(s)[:, None] + keys)).squeeze(-1)
                context = self._attend(e, mask, memory)
                s, c = self.decoder(torch.cat([x, context], -1), (s, c))
            elif self.kind == "general":
                s, c = self.decoder(x, (s, c))
                context = self._attend(torch.bmm(keys, s[:, :, None]).squeeze(-1), mask, memory)
            else:
                context = final
                s, c = self.decoder(torch.cat([x, context], -1), (s, c))
            logits.append(self.output(torch.tanh(self.combine(torch.cat([s, context], -1)))))
        return torch.stack(logits)

    @staticmethod
    def _attend(e: Tensor, mask: Tensor, memory: Tensor) -> Tensor:
        a = torch.softmax(e.masked_fill(~mask, float("-inf")), -1)
        return torch.bmm(a[:, None], memory).squeeze(1)


def plain_state(model: Seq2Seq) -> dict[str, Tensor]:
    """rnnkit's parameters under the plain model's names."""
    out = {}
    for k, v in model.state_dict().items():
        k = k.replace("encoder.0.", "encoder.").replace("attention.", "")
        if k.startswith("decoder.0."):
            k = "decoder." + k[len("decoder.0."):].replace("_l0", "")
        out[k] = v
    return out


def batch(shape: str, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A batch of random pairs of the shape's lengths (sources vary by up to 30 %)."""
    S, T = SHAPES[shape]
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, int(S * 0.7)), S + 1, (BATCH,), generator=g)
    lengths[0] = S
    src = torch.randint(4, VOCAB[0], (S, BATCH), generator=g)
    src[torch.arange(S)[:, None] >= lengths[None, :]] = PAD_ID
    y = torch.randint(4, VOCAB[1], (T + 1, BATCH), generator=g)
    return src, lengths, y[:-1], y[1:]


def trainer(model: nn.Module, data: tuple[Tensor, ...], fused: bool):
    """One training step of ``model`` on ``data`` (forward, backward, AdamW) as a function
    returning the loss (for the same-numbers check). rnnkit's Trainer uses AdamW's fused
    kernel (``fused``); a plain script, AdamW's default."""
    src, lengths, y_in, y_out = data
    opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=fused or None)

    def step() -> float:
        out = model(src, lengths, y_in)
        logits = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y_out.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def bench_one(attention: str, hidden: int, shape: str, pairs: int) -> dict[str, Any]:
    torch.manual_seed(0)
    ours = Seq2Seq(*VOCAB, hidden=hidden, embed=64, attention=attention, max_length=32)
    plain = PlainSeq2Seq(attention, 64, hidden)
    plain.load_state_dict(plain_state(ours), strict=True)
    data = batch(shape)
    a, b = trainer(ours, data, fused=True), trainer(plain, data, fused=False)
    la, lb = a(), b()
    if abs(la - lb) > 1e-4 * max(1.0, abs(lb)):
        raise RuntimeError(f"not the same model: losses {la} and {lb}")
    r = compare({"plain": b, "rnnkit": a}, pairs=pairs, warmup=2)
    return {"attention": attention, "hidden": hidden, "shape": shape,
            "plain_ms": 1000 * r["seconds"]["plain"], "rnnkit_ms": 1000 * r["seconds"]["rnnkit"],
            "ratio": r["ratios"]["rnnkit"], "loss_difference": abs(la - lb)}


def run_bench(quick: bool = False) -> dict[str, Any]:
    rows = []
    sizes, shapes, pairs = ((32,), ("addition",), 2) if quick else (SIZES, tuple(SHAPES), 15)
    for shape in shapes:
        for hidden in sizes:
            for attention in ATTENTIONS:
                rows.append(bench_one(attention, hidden, shape, pairs))
                print(_row(rows[-1]), file=sys.stderr, flush=True)
    return {"rows": rows, "quick": quick, "batch": BATCH, "threads": torch.get_num_threads(),
            "machine": machine(), "goal_met": None if quick else
            all(r["ratio"] >= GOAL for r in rows)}


def _row(r: dict[str, Any]) -> str:
    return (f"{r['shape']:<9} {r['hidden']:>4} {r['attention']:<9} {r['plain_ms']:>9.1f} "
            f"{r['rnnkit_ms']:>9.1f} {r['ratio']:>6.2f}x")


def table(result: dict[str, Any]) -> str:
    lines = [f"Seq2Seq training step, batch {result['batch']}, {result['threads']} threads: "
             "rnnkit against a plain PyTorch script (nn.LSTM encoder, LSTMCell loop)",
             f"{'shape':<9} {'H':>4} {'attention':<9} {'plain ms':>9} {'rnnkit ms':>9} "
             f"{'ratio':>7}"]
    lines += [_row(r) for r in result["rows"]]
    if result["quick"]:
        lines.append("a smoke run (--quick): sizes too small to judge the goal")
    else:
        met = sum(r["ratio"] >= GOAL for r in result["rows"])
        lines.append(f"goal (rnnkit >= {GOAL:.1f}x the plain script): {met} of "
                     f"{len(result['rows'])} rows")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnkit bench seq2seq", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, seconds")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: "
                   "torch's choice)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_bench(args.quick)
    print(table(result))
    if args.json:
        write_json(args.json, result)
    return 0
