"""torchrun: two CPU processes (gloo, DDP) with the same global batch follow the single-process
loss curve; the global batch must split evenly over the processes."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.train.distributed import Dist
from rnnkit.train.lm import DEFAULTS, LMTask

TEXT = ("the quick brown fox jumps over the lazy dog. " * 4
        + "pack my box with five dozen liquor jugs.\n") * 9
FLAGS = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "8",
         "--steps", "20", "--warmup", "2", "--lr", "0.01", "--dropout", "0", "--log-every", "1",
         "--eval-every", "10", "--sample-length", "10", "--no-progress"]


def test_batch_must_divide_over_processes():
    tok = build_tokenizer("char", TEXT)
    s = {**DEFAULTS, "batch_size": 3, "seq_len": 8}
    with pytest.raises(UserError, match="multiple of 2"):
        LMTask(tok, TEXT, "abc", "abc", s, Dist(rank=0, world=2), torch.device("cpu"))


def test_each_rank_reads_its_share_of_the_global_batch():
    tok = build_tokenizer("char", TEXT)
    s = {**DEFAULTS, "batch_size": 4, "seq_len": 8}
    cpu = torch.device("cpu")
    whole = LMTask(tok, TEXT, "abc", "abc", s, Dist(), cpu)
    halves = [LMTask(tok, TEXT, "abc", "abc", s, Dist(rank=r, world=2), cpu) for r in (0, 1)]
    x = whole.batches.batch(3)[0]
    assert torch.equal(torch.cat([x[:, h.local] for h in halves], 1), x)


def _losses(out):
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_match_one(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["-m", "rnnkit", "train", "lm", "--text", str(text), *FLAGS]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(["torchrun", "--nproc_per_node=2", *args, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 20
    assert two.stdout.count("val bpc") == 1  # only rank 0 reports
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 20
    assert a[-1] < a[0]  # it learns
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-4, atol=1e-5)

