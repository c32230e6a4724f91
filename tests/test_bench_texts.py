"""`rnnkit bench texts`: the defaults on the user's texts against the 5-gram (smoke size)."""

import json

from rnnkit.bench import texts as bench_texts
from rnnkit.train.sizing import WIDTHS, size_for

PROSE = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no "
         "money in my purse, and nothing particular to interest me on shore, I thought I would "
         "sail about a little and see the watery part of the world.\n")


def test_quick_bench_reports_the_defaults_choice_and_the_baseline(tmp_path, capsys, one_thread):
    text = tmp_path / "prose.txt"
    text.write_text(PROSE * 20)
    out = tmp_path / "r.json"
    assert bench_texts.main([str(text), "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["chars"] == len(PROSE * 20) and row["goal"] == "n/a"  # under 100,000 chars
    tier = size_for(row["train_chars"])
    assert (row["dropout"], row["weight_decay"]) == (tier["dropout"], tier["weight_decay"])
    # 3 s buy few steps on any CPU: the width narrows below the tier's (sizing.fit_width)
    assert row["hidden"] in WIDTHS and row["hidden"] <= tier["hidden"]
    assert row["val_ngram_bpc"] > 0 and row["steps"] > 0
    assert "prose.txt" in printed and "a smoke run: too short to judge the goal" in printed
    assert "met on" not in printed
