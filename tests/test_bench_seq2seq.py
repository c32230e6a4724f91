"""`rnnkit bench seq2seq` and `rnnkit bench pairs`: the plain script is the same model, the
generated pairs are right, and the smoke runs print their tables."""

import json
import random
import re

import pytest
import torch

from rnnkit.bench import pairs as bp
from rnnkit.bench import seq2seq as bs
from rnnkit.cli.main import main
from rnnkit.models.seq2seq import Seq2Seq


@pytest.fixture(autouse=True)
def _one(one_thread):
    pass


@pytest.mark.parametrize("attention", bs.ATTENTIONS)
def test_the_plain_script_is_the_same_model(attention):
    torch.manual_seed(0)
    ours = Seq2Seq(*bs.VOCAB, hidden=16, embed=8, attention=attention).double()
    plain = bs.PlainSeq2Seq(attention, 8, 16).double()
    plain.load_state_dict(bs.plain_state(ours), strict=True)
    src, lengths, y_in, _ = bs.batch("addition")
    logits, _ = ours(src, lengths, y_in)
    assert torch.allclose(logits, plain(src, lengths, y_in), atol=1e-10)


def test_bench_seq2seq_quick_prints_its_table(capsys, tmp_path):
    assert main(["bench", "seq2seq", "--quick", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "smoke run" in out and "bahdanau" in out
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert {r["attention"] for r in rows} == set(bs.ATTENTIONS)
    assert all(r["loss_difference"] < 1e-4 and r["ratio"] > 0 for r in rows)


def _from_roman(text):
    values = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}
    total = 0
    for a, b in zip(text, text[1:] + " "):
        v = values[a]
        total += -v if b != " " and values[b] > v else v
    return total


def test_the_generated_kinds_are_right():
    r = random.Random(0)
    pairs = bp.roman(r)
    assert len(pairs) == bp.PAIRS and len({s for s, _ in pairs}) == bp.PAIRS
    assert all(_from_roman(s) == int(t) for s, t in pairs)
    for s, t in bp.snake(r)[:500]:
        assert re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), s) == t
    assert all("".join(sorted(s)) == t for s, t in bp.sorted_letters(r))
    for s, t in bp.clock(r):
        h, m = map(int, t.split(":"))
        pm = "p" in s.split()[-1]
        digits = re.match(r"(\d+)[:.](\d+)", s)
        if digits:
            h12, m12 = map(int, digits.groups())
        else:
            h12 = int(re.search(r"\d+", s).group())
            m12 = 45 if "quarter to" in s else 15 if "quarter past" in s else \
                30 if "half past" in s else 0
            if "quarter to" in s:  # quarter to 8 pm is 19:45
                h12 = (h12 - 1) or 12
                pm = pm if h12 != 11 else not pm
        assert (h12 % 12 + (12 if pm else 0), m12) == (h, m), s


def test_bench_pairs_quick_on_a_file(capsys, tmp_path):
    f = tmp_path / "roman.tsv"
    f.write_text("".join(f"{s}\t{t}\n" for s, t in bp.roman(random.Random(0))[:200]))
    assert main(["bench", "pairs", str(f), "--quick", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "roman.tsv" in out and "smoke run" in out
    row = json.loads((tmp_path / "p.json").read_text())["rows"][0]
    assert row["pairs"] == 200 and 0 <= row["test_exact"] <= 1
    assert main(["bench", "pairs", str(tmp_path / "nope.tsv"), "--quick"]) == 2
