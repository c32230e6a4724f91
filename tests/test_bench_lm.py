"""`rnnkit bench lm`: a quick run writes complete JSON; the plain script is rnnkit's size."""

import json
import math

import pytest

from rnnkit.bench.lm import (
    CELLS,
    PARAM_TOLERANCE,
    PlainLM,
    count_parameters,
    plain_size,
    rnnkit_model,
    rnnkit_settings,
)
from rnnkit.cli.main import main


def test_quick_run_writes_json_with_finite_numbers(tmp_path, capsys):
    path = tmp_path / "bench-lm.json"
    assert main(["bench", "lm", "--quick", "--cells", "lstm", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rnnkit" in out and "plain" in out and "5-gram" in out
    result = json.loads(path.read_text())
    assert {"machine", "corpus", "max_time", "ngram", "cells", "targets"} <= set(result)
    (row,) = result["cells"]
    assert row["cell"] == "lstm"
    for who in ("rnnkit", "plain"):
        m = row[who]
        for key in ("val_bpc", "tokens_per_second", "train_seconds"):
            assert math.isfinite(m[key]) and m[key] > 0, (who, key)
        assert m["steps"] >= 1
        assert m["train_seconds"] < 5 * result["max_time"]  # the budget bounded both
    assert math.isfinite(row["throughput_ratio"]) and row["throughput_ratio"] > 0
    assert 0 < result["ngram"]["val_bpc"] < 8
    # the same size: what "same parameter count" means in the issue
    r, p = row["rnnkit"]["parameters"], row["plain"]["parameters"]
    assert abs(p - r) <= PARAM_TOLERANCE * r
    assert set(result["targets"]["lstm"]) == {"lower_bpc_than_plain", "throughput_at_least_1x",
                                              "both_below_ngram"}


@pytest.mark.parametrize("cell", CELLS)
def test_plain_model_of_rnnkit_shape_has_rnnkit_parameter_count(cell):
    """rnnkit's LanguageModel at its defaults and nn.Embedding + nn.LSTM/GRU/RNN + nn.Linear
    of the same sizes hold exactly the same number of parameters."""
    s = rnnkit_settings(cell, {"dataset": "python-source", "max_chars": 1000, "seed": 0},
                        train_chars=900)
    ours = count_parameters(rnnkit_model(s, 97))
    plain = PlainLM(cell, 97, s["embed"], s["hidden"], s["layers"], device="meta")
    assert count_parameters(plain) == ours


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("target", [20_000, 400_000, 3_000_000])
def test_plain_size_matches_a_parameter_count(cell, target):
    """Used when rnnkit ties weights: the untied plain model is resized to the same count."""
    embed, hidden = plain_size(cell, 100, 2, target)
    n = count_parameters(PlainLM(cell, 100, embed, hidden, 2, device="meta"))
    assert abs(n - target) <= PARAM_TOLERANCE * target


def test_bad_flags_are_user_errors(capsys):
    assert main(["bench", "lm", "--cells", "lstm,transformer"]) == 2
    assert "--cells" in capsys.readouterr().err
    assert main(["bench", "lm", "--max-time", "0"]) == 2
    assert "--max-time" in capsys.readouterr().err
