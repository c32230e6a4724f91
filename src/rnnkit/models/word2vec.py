"""Word2Vec (deck 001, Mikolov et al. 2013): word vectors learnt by predicting neighbours.

Two tables of V x D numbers: ``input`` (the embedding: a word's vector, what is kept) and
``output`` (a word's vector as a prediction target). For a pair (input word a, target word b):

* negative sampling: ``loss = -log s(in_a . out_b) - sum_k log s(-in_a . out_nk)``, the
  ``n_k`` drawn from the unigram^0.75 table, ``s`` the logistic sigmoid;
* full softmax (tiny vocabularies): ``loss = -log softmax(in_a . out^T)_b``.

Skip-gram takes each centre word as input and each neighbour as target; CBOW takes the mean of
the neighbours' input vectors as input and the centre as target. Training is plain SGD with the
hand-written gradient (no autograd: word2vec's updates touch a few rows each), in batches
(``sgns_step``, ``softmax_step``): on a GPU, and as the reference for the compiled CPU loop
(``engine/word2vec.cpp``), which makes the same update one pair at a time. With one pair per
batch the two agree to rounding; ``sgns_loss`` is the loss for autograd, which the step's
gradient is tested against.

Example:
    >>> import math
    >>> model = Word2Vec(vocab_size=10, dim=8)
    >>> tuple(model.input.weight.shape), float(model.output.weight.abs().sum())
    ((10, 8), 0.0)
    >>> loss = model.sgns_loss(torch.tensor([1]), torch.tensor([2]), torch.tensor([[3, 4]]))
    >>> round(float(loss), 4) == round(3 * math.log(2), 4)   # zero outputs: s(0) = 1/2 each
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCHITECTURES = ("skipgram", "cbow")
LOSSES = ("negative", "softmax")


class Word2Vec(nn.Module):
    """Input (embedding) and output vectors of ``vocab_size`` words; see the module doc."""

    def __init__(self, vocab_size: int, dim: int = 100, architecture: str = "skipgram",
                 loss: str = "negative"):
        super().__init__()
        if architecture not in ARCHITECTURES or loss not in LOSSES:
            raise ValueError(f"architecture in {ARCHITECTURES}, loss in {LOSSES}")
        self.config = {"vocab_size": vocab_size, "dim": dim, "architecture": architecture,
                       "loss": loss}
        self.input = nn.Embedding(vocab_size, dim)
        self.output = nn.Embedding(vocab_size, dim)
        with torch.no_grad():  # word2vec.c's start: small random inputs, zero outputs
            self.input.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.output.weight.zero_()
        self.requires_grad_(False)  # trained by the hand-written steps below

    def forward(self, ids: Tensor) -> Tensor:
        """The word vectors (input table) of ``ids``."""
        return self.input(ids)

    def sgns_loss(self, inputs: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
        """Negative sampling's loss summed over the pairs (differentiable; a negative equal to
        its pair's target is left out, as the update leaves it out)."""
        h = self.input.weight[inputs]
        return _sgns_terms(h, self.output.weight, targets, negatives)[0]

    def softmax_loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The full softmax's cross-entropy summed over the pairs (differentiable)."""
        logits = self.input.weight[inputs] @ self.output.weight.T
        return F.cross_entropy(logits, targets, reduction="sum")


def _sgns_terms(h: Tensor, out: Tensor, targets: Tensor, negatives: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(loss sum, f, labels, mask) for inputs ``h`` (B, D): f = h . out[w] for the target and
    each negative w (B, 1 + K); mask drops negatives that are the target."""
    words = torch.cat([targets[:, None], negatives], 1)
    f = torch.einsum("bd,bkd->bk", h, out[words])
    labels = torch.zeros_like(f)
    labels[:, 0] = 1
    mask = torch.ones_like(f)
    mask[:, 1:] = (negatives != targets[:, None]).to(f.dtype)
    # -log s(f) for the target, -log s(-f) = -log(1 - s(f)) for the negatives
    loss = (F.softplus(torch.where(labels > 0, -f, f)) * mask).sum()
    return loss, f, labels, mask


@torch.no_grad()
def sgns_step(input_table: Tensor, output_table: Tensor, h: Tensor, targets: Tensor,
              negatives: Tensor, alpha: float | Tensor) -> tuple[float, Tensor]:
    """One negative-sampling SGD step for a batch of inputs ``h`` (B, D) (input vectors, or
    CBOW's means) and their targets (B,) and negatives (B, K): updates ``output_table`` in
    place and returns (the loss summed before the step, the inputs' steps (B, D)), which the
    caller adds to the input rows. ``alpha``: the rate, or one per pair (B,).

    Per pair this is word2vec.c's update: g = (label - s(f)) alpha for the target and each
    negative, out[w] += g h, and h's step is the sum of g out[w] (the old out[w])."""
    loss, f, labels, mask = _sgns_terms(h, output_table, targets, negatives)
    alpha = torch.as_tensor(alpha, dtype=h.dtype, device=h.device)
    g = (labels - torch.sigmoid(f)) * mask * (alpha[:, None] if alpha.dim() else alpha)
    words = torch.cat([targets[:, None], negatives], 1)
    dh = torch.einsum("bk,bkd->bd", g, output_table[words])
    output_table.index_add_(0, words.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(
        -1, h.shape[1]))
    return float(loss), dh


@torch.no_grad()
def softmax_step(output_table: Tensor, h: Tensor, targets: Tensor, alpha: float | Tensor
                 ) -> tuple[float, Tensor]:
    """``sgns_step`` for the full softmax: g = (onehot - softmax(h out^T)) alpha over the whole
    vocabulary; out += g^T h; h's step is g out."""
    logits = h @ output_table.T
    loss = float(F.cross_entropy(logits, targets, reduction="sum"))
    alpha = torch.as_tensor(alpha, dtype=h.dtype, device=h.device)
    g = -torch.softmax(logits, -1)
    g[torch.arange(len(targets), device=h.device), targets] += 1
    g *= alpha[:, None] if alpha.dim() else alpha
    dh = g @ output_table
    output_table.add_(g.T @ h)
    return loss, dh


def cosine_table(vectors: Tensor) -> Tensor:
    """The vectors scaled to unit length (a zero vector stays zero), for cosine similarity."""
    return vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)


def pca_2d(vectors: Tensor) -> Tensor:
    """The rows projected on their first two principal components (N, 2)."""
    centred = vectors - vectors.mean(0)
    _, _, v = torch.linalg.svd(centred.double(), full_matrices=False)
    return (centred.double() @ v[:2].T).float()


__all__ = ["Word2Vec", "sgns_step", "softmax_step", "cosine_table", "pca_2d"]
