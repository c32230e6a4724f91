"""The encoder-decoder (deck 002's delayed many-to-many, deck 003's machine translation).

The encoder reads the source x_1..x_S (any cell, stacked, optionally bidirectional, optionally
with GNMT's residual connections between layers) into states h_1..h_S, the *memory*. The
decoder starts from s_0 = tanh(W_b h_S) and writes y_1, y_2, ... one token at a time, each from
the token before it (``<s>`` first) until it writes ``</s>``:

    none (Cho et al. 2014):   s_t = cell([E y_{t-1}; c], s_{t-1}),  c = h_S for every t
    bahdanau (2015):          c_t = attend(s_{t-1}),  s_t = cell([E y_{t-1}; c_t], s_{t-1})
    dot, general (Luong 2015): s_t = cell(E y_{t-1}, s_{t-1}),  c_t = attend(s_t)

and in every case  h~_t = tanh(W_c [s_t; c_t]),  p(y_t | y_<t, x) = softmax(W_o h~_t).

Training feeds the true previous token (teacher forcing). Where the decoder's recurrence does
not read the context (none, dot, general) all target steps run in one call of the recurrent
engine and attention is one batched product; Bahdanau's query s_{t-1} needs the step loop.
Decoding is greedy or a beam search with GNMT's length penalty. Every prediction comes with
its attention weights (a row over the source tokens).

Layout: token ids are time-major (S, B) and (T, B) with ``lengths``, as the rest of rnnkit;
attention weights are batch-first (B, T, S).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import _VF, Tensor, nn

from ..cells import available
from ..data.vocab import BOS_ID, EOS_ID, PAD_ID
from ..errors import UserError
from ..layers import Recurrent
from .attention import Attention

ATTENTIONS = ("bahdanau", "dot", "general", "none")
State = tuple[Tensor, ...]  # one layer's state: (h,) or (h, c), each (B, H)

# torch's fused one-step kernels, as torch.nn.LSTMCell / GRUCell / RNNCell call them
_CELL_KERNELS = {"LSTM": _VF.lstm_cell, "GRU": _VF.gru_cell, "RNN_TANH": _VF.rnn_tanh_cell,
                 "RNN_RELU": _VF.rnn_relu_cell}


@dataclass
class Encoded:
    """The encoder's output for a batch: what every decoder step reads."""

    memory: Tensor  # (B, S, M) the encoder states
    keys: Tensor  # (B, S, K) the memory's part of the attention scores, computed once
    mask: Tensor  # (B, S) True at real (not padded) positions
    final: Tensor  # (B, M) the last real step's state (both directions)

    def select(self, rows: Tensor) -> Encoded:
        """The rows ``rows`` of the batch (a beam's hypotheses share one source)."""
        return Encoded(*(t.index_select(0, rows) for t in (self.memory, self.keys, self.mask,
                                                            self.final)))


class Seq2Seq(nn.Module):
    """An encoder-decoder with attention over ``source_vocab`` and ``target_vocab`` tokens.

    ``config`` holds the constructor's arguments, so ``Seq2Seq(**m.config)`` rebuilds it.

    Example:
        >>> import torch
        >>> m = Seq2Seq(12, 10, hidden=16, embed=8, attention="bahdanau")
        >>> src, lengths = torch.randint(4, 12, (6, 3)), torch.tensor([6, 4, 2])
        >>> y_in = torch.randint(4, 10, (5, 3))                  # <s> y_1 .. y_4
        >>> logits, weights = m(src, lengths, y_in)
        >>> logits.shape, weights.shape                          # (T, B, V), (B, T, S)
        (torch.Size([5, 3, 10]), torch.Size([3, 5, 6]))
        >>> outputs, attention = m.greedy(src, lengths, max_length=7)  # untrained: any tokens
        >>> len(outputs), attention[2].shape[1]               # a row per token, 2 source tokens
        (3, 2)
    """

    def __init__(self, source_vocab: int, target_vocab: int, *, cell: str = "lstm",
                 embed: int = 64, hidden: int = 256, layers: int = 1, bidirectional: bool = True,
                 residual: bool = False, attention: str = "bahdanau", dropout: float = 0.0,
                 max_length: int = 100, backend: str = "auto"):
        super().__init__()
        _check(source_vocab, target_vocab, cell, embed, hidden, layers, attention, dropout,
               max_length)
        self.config = {"source_vocab": source_vocab, "target_vocab": target_vocab, "cell": cell,
                       "embed": embed, "hidden": hidden, "layers": layers,
                       "bidirectional": bidirectional, "residual": residual,
                       "attention": attention, "dropout": float(dropout),
                       "max_length": max_length, "backend": backend}
        self.kind, self.residual, self.max_length = attention, residual, max_length
        D = 2 if bidirectional else 1
        M = D * hidden  # memory size
        self.source_embedding = nn.Embedding(source_vocab, embed, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocab, embed, padding_idx=PAD_ID)
        self.encoder = nn.ModuleList(
            Recurrent(cell, embed if k == 0 else M, hidden, bidirectional=bidirectional,
                      backend=backend) for k in range(layers))
        self.bridge = nn.Linear(M, layers * hidden)  # s_0 of every decoder layer from h_S
        feeds_context = attention in ("bahdanau", "none")  # the context enters the recurrence
        self.decoder = nn.ModuleList(
            Recurrent(cell, (embed + (M if feeds_context else 0)) if k == 0 else hidden, hidden,
                      backend=backend) for k in range(layers))
        # Luong's dot product needs h_s as wide as s_t: a bidirectional memory is mapped to it
        self.memory_projection = (nn.Linear(M, hidden, bias=False)
                                  if attention == "dot" and M != hidden else None)
        K = hidden if self.memory_projection is not None else M
        self.attention = (None if attention == "none" else
                          Attention(attention, hidden, K, attention_size=hidden))
        self.combine = nn.Linear(hidden + K, hidden)  # h~_t = tanh(W_c [s_t; c_t])
        self.output = nn.Linear(hidden, target_vocab)
        self.drop = nn.Dropout(dropout)

    # ---- the encoder ----------------------------------------------------------------------
    def encode(self, src: Tensor, lengths: Tensor) -> Encoded:
        """Source ids (S, B) with their lengths (B,) -> the memory and what attention needs."""
        x = self.drop(self.source_embedding(src))
        for k, rnn in enumerate(self.encoder):
            out, state = rnn(x, lengths=lengths)
            x = out + x if self.residual and k > 0 else out  # GNMT: same-size layers add
            if k < len(self.encoder) - 1:
                x = self.drop(x)
        h = state[0] if isinstance(state, tuple) else state  # (D, B, H): top layer, last step
        final = torch.cat(list(h), -1)
        memory = x.transpose(0, 1)  # (B, S, M)
        if self.memory_projection is not None:
            memory = self.memory_projection(memory)
        mask = torch.arange(src.shape[0], device=src.device) < lengths.to(src.device)[:, None]
        keys = memory if self.attention is None else self.attention.prepare(memory)
        return Encoded(memory, keys, mask, final)

    def initial_state(self, enc: Encoded) -> list[State]:
        """s_0 = tanh(W_b h_S) for each decoder layer (a cell state starts at zero)."""
        B, H = enc.final.shape[0], self.decoder[0].hidden_size
        h0 = torch.tanh(self.bridge(enc.final)).view(B, len(self.decoder), H)
        states = []
        for k, rnn in enumerate(self.decoder):
            h = h0[:, k].contiguous()
            states.append((h, torch.zeros_like(h)) if rnn.num_states == 2 else (h,))
        return states

    # ---- the decoder ----------------------------------------------------------------------
    def forward(self, src: Tensor, lengths: Tensor, y_in: Tensor
                ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: ``y_in`` (T, B) is ``<s>`` then the target's tokens but the last ->
        (logits (T, B, V), attention weights (B, T, S), or None without attention)."""
        enc = self.encode(src, lengths)
        states = self.initial_state(enc)
        if self.kind == "bahdanau":  # the query s_{t-1} is known one step at a time
            outs, rows = [], []
            for t in range(y_in.shape[0]):
                logits, states, w = self.step(enc, y_in[t], states)
                outs.append(logits)
                rows.append(w)
            return torch.stack(outs), torch.stack(rows, 1)
        return self._parallel(enc, y_in, states)

    def _parallel(self, enc: Encoded, y_in: Tensor, states: list[State]
                  ) -> tuple[Tensor, Tensor | None]:
        """All target steps in one engine call per layer (none, dot, general)."""
        T = y_in.shape[0]
        x = self.drop(self.target_embedding(y_in))
        if self.kind == "none":
            x = torch.cat([x, enc.final.expand(T, -1, -1)], -1)
        for k, rnn in enumerate(self.decoder):
            hx = tuple(s.unsqueeze(0) for s in states[k])
            out, _ = rnn(x, hx if len(hx) == 2 else hx[0])
            x = out + x if self.residual and k > 0 else out
            if k < len(self.decoder) - 1:
                x = self.drop(x)
        s = x.transpose(0, 1)  # (B, T, H)
        if self.attention is None:
            context, weights = enc.final.unsqueeze(1).expand(-1, T, -1), None
        else:
            context, weights = self.attention(s, enc.keys, enc.memory, enc.mask)
        logits = self._read_out(s, context)
        return logits.transpose(0, 1), weights

    def step(self, enc: Encoded, y_prev: Tensor, states: list[State]
             ) -> tuple[Tensor, list[State], Tensor | None]:
        """One decoder step: previous tokens (B,) -> (logits (B, V), new states, weights
        (B, S) or None)."""
        x = self.drop(self.target_embedding(y_prev))
        weights = None
        if self.kind == "bahdanau":
            context, weights = self.attention(states[-1][0], enc.keys, enc.memory, enc.mask)
            x = torch.cat([x, context], -1)
        elif self.kind == "none":
            context = enc.final
            x = torch.cat([x, context], -1)
        new = []
        for k, rnn in enumerate(self.decoder):
            state = _cell_step(rnn, x, states[k])
            new.append(state)
            x = state[0] + x if self.residual and k > 0 else state[0]
            if k < len(self.decoder) - 1:
                x = self.drop(x)
        if self.kind in ("dot", "general"):
            context, weights = self.attention(x, enc.keys, enc.memory, enc.mask)
        return self._read_out(x, context), new, weights

    def _read_out(self, s: Tensor, context: Tensor) -> Tensor:
        """softmax's input W_o h~_t, with h~_t = tanh(W_c [s_t; c_t])."""
        return self.output(self.drop(torch.tanh(self.combine(torch.cat([s, context], -1)))))

    # ---- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, src: Tensor, lengths: Tensor, max_length: int | None = None
               ) -> tuple[list[list[int]], list[Tensor]]:
        """The most likely token at every step, for a batch: each output's token ids (without
        ``</s>``) and its attention (rows, S_i): a row per token and one for ``</s>`` when it
        was written within ``max_length`` (zeros without attention)."""
        limit = max_length or self.max_length
        enc = self.encode(src, lengths)
        states = self.initial_state(enc)
        B, S = enc.mask.shape
        y = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        tokens, rows = [], []
        for _ in range(limit):
            logits, states, w = self.step(enc, y, states)
            y = logits.argmax(-1)
            tokens.append(y)
            rows.append(w if w is not None else enc.memory.new_zeros(B, S))
            done = done | (y == EOS_ID)
            if bool(done.all()):
                break
        ids, att = torch.stack(tokens, 1).tolist(), torch.stack(rows, 1)
        out, maps = [], []
        for b in range(B):
            n = ids[b].index(EOS_ID) if EOS_ID in ids[b] else len(ids[b])
            out.append(ids[b][:n])
            maps.append(att[b, :n + 1, :int(lengths[b])])
        return out, maps

    @torch.no_grad()
    def beam_search(self, src: Tensor, beam: int = 5, length_penalty: float = 0.6,
                    max_length: int | None = None) -> tuple[list[int], float]:
        """The best output for ONE source (S,) found by a beam of ``beam`` hypotheses:
        (token ids without ``</s>``, its score). Scores are log p(y | x) / lp(y) with GNMT's
        lp(y) = ((5 + |y|) / 6) ** length_penalty (|y| counts ``</s>``), so longer outputs are
        not punished for their extra factors. The greedy output is a candidate too, so a wider
        beam never returns a lower score than ``beam=1``. ``beam=1`` is greedy decoding."""
        if beam < 1:
            raise UserError(f"--beam must be at least 1, got {beam}")
        limit = max_length or self.max_length
        lengths = torch.tensor([src.shape[0]], device=src.device)
        enc1 = self.encode(src.unsqueeze(1), lengths)
        states = self.initial_state(enc1)
        rows = torch.zeros(1, dtype=torch.long, device=src.device)
        alive: list[list[int]] = [[]]
        alive_logp = enc1.final.new_zeros(1, dtype=_float(enc1.final.dtype))
        done: list[tuple[float, list[int]]] = []
        for _ in range(limit):
            y = torch.tensor([h[-1] if h else BOS_ID for h in alive], device=src.device)
            logits, states, _ = self.step(enc1.select(rows), y, states)
            logp = torch.log_softmax(logits.to(alive_logp.dtype), -1) + alive_logp[:, None]
            logp = logp.view(-1)
            top = logp.topk(min(2 * beam, logp.numel()))
            keep, next_alive, next_logp = [], [], []
            V = logits.shape[-1]
            for rank, (value, index) in enumerate(zip(top.values.tolist(),
                                                      top.indices.tolist())):
                row, token = divmod(index, V)
                if token == EOS_ID:
                    if rank >= beam:  # an ending that would not have made the beam
                        continue
                    done.append((value / _penalty(len(alive[row]) + 1, length_penalty),
                                 alive[row]))
                elif len(keep) < beam:
                    keep.append(row)
                    next_alive.append(alive[row] + [token])
                    next_logp.append(value)
            if len(done) >= beam or not keep:
                break
            index = torch.tensor(keep, device=src.device)
            states = [tuple(t.index_select(0, index) for t in s) for s in states]
            rows = torch.zeros(len(keep), dtype=torch.long, device=src.device)
            alive, alive_logp = next_alive, alive_logp.new_tensor(next_logp)
        else:  # the length limit: unfinished hypotheses compete as they are
            done += [(v / _penalty(len(h), length_penalty), h)
                     for h, v in zip(alive, alive_logp.tolist())]
        if beam > 1:
            greedy = self.beam_search(src, 1, length_penalty, limit)
            done.append((greedy[1], greedy[0]))
        score, best = max(done, key=lambda d: d[0])
        return best, score

    @torch.no_grad()
    def score(self, src: Tensor, output: list[int], length_penalty: float = 0.6,
              max_length: int | None = None) -> float:
        """log p(output </s> | src) / lp, the beam search's score of one output (teacher
        forcing). An output as long as the decoder's limit was cut there: no ``</s>`` term."""
        cut = len(output) >= (max_length or self.max_length)
        y = torch.tensor([BOS_ID, *output], device=src.device).unsqueeze(1)
        logits, _ = self(src.unsqueeze(1), torch.tensor([src.shape[0]]), y)
        logp = torch.log_softmax(logits[:, 0].to(_float(logits.dtype)), -1)
        target = torch.tensor([*output, EOS_ID], device=src.device)
        if cut:
            logp, target = logp[:-1], target[:-1]
        total = float(logp.gather(1, target[:, None]).sum())
        return total / _penalty(len(target), length_penalty)

    @torch.no_grad()
    def attention_of(self, src: Tensor, output: list[int]) -> Tensor:
        """The attention (len(output) + 1, S) of ONE source (S,) while writing ``output`` and
        ``</s>`` (zeros without attention)."""
        y = torch.tensor([BOS_ID, *output], device=src.device).unsqueeze(1)
        logits, weights = self(src.unsqueeze(1), torch.tensor([src.shape[0]]), y)
        if weights is None:
            return logits.new_zeros(len(output) + 1, src.shape[0])
        return weights[0]


def _float(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for log-probabilities (bf16 sums would drift)."""
    return torch.promote_types(dtype, torch.float32)


def _penalty(n: int, alpha: float) -> float:
    """GNMT's length penalty lp = ((5 + n) / 6) ** alpha (1 for alpha 0)."""
    return ((5 + n) / 6) ** alpha


def _cell_step(rnn: Recurrent, x: Tensor, state: State) -> State:
    """One step of a one-layer ``Recurrent``: torch's fused cell kernel where the cell has one
    (what torch.nn.LSTMCell calls), else the cell's own step equations."""
    p = rnn.layer_params(0, 0)
    cell = rnn.cells[0]
    kernel = _CELL_KERNELS.get(cell.native_mode or "")
    if kernel is not None and "bias_ih" in p and len(p) == 4:
        args = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
        if cell.native_mode == "LSTM":
            return tuple(kernel(x, state, *args))
        return (kernel(x, state[0], *args),)
    xp = cell.input_projection(x.unsqueeze(0), p)[0]
    return tuple(cell.step(xp, state, p))


def _check(source_vocab, target_vocab, cell, embed, hidden, layers, attention, dropout,
           max_length) -> None:
    for name, v in [("source_vocab", source_vocab), ("target_vocab", target_vocab),
                    ("embed", embed), ("hidden", hidden), ("layers", layers),
                    ("max_length", max_length)]:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")
    if cell not in available():
        raise UserError(f"unknown cell {cell!r}; choose --cell from {', '.join(available())}")
    if attention not in ATTENTIONS:
        raise UserError(f"unknown attention {attention!r}; choose --attention from "
                        f"{', '.join(ATTENTIONS)}")
    if not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}; e.g. --dropout 0.1")


def describe(config: dict[str, Any]) -> str:
    """One line: 'bidirectional lstm 1x256 encoder, bahdanau attention'."""
    c = config
    bi = "bidirectional " if c["bidirectional"] else ""
    res = ", residual" if c["residual"] and c["layers"] > 1 else ""
    att = "no attention" if c["attention"] == "none" else f"{c['attention']} attention"
    return f"{bi}{c['cell']} {c['layers']}x{c['hidden']} encoder and decoder{res}, {att}"

