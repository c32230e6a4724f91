"""The command explains itself: --version, `rnnkit cells`, mistyped flags named with the closest
real one, one-line argparse errors, and --quick benchmarks that do not pass a verdict."""

import json
from importlib import metadata

import pytest
import torch

from rnnkit.bench import core, lm
from rnnkit.cells import available
from rnnkit.cli.flags import unknown_flag
from rnnkit.cli.main import build_parser, main


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured  # one line
    return captured.err


def test_version_names_rnnkit_and_torch(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == (f"rnnkit {metadata.version('rnnkit')} "
                                       f"(torch {torch.__version__})\n")


def test_cells_lists_every_cell_with_its_backends_and_a_description(capsys):
    assert main(["cells"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["cell", "backends", "description"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == available()
    assert main(["cells", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == available()
    for name, row in table.items():
        assert row["description"].strip() and row["description"] in rows[name]
        assert {"bptt", "autograd"} <= set(row["backends"])  # every cell runs on these
    assert "native" in table["lstm"]["backends"] and "native" not in table["mut1"]["backends"]
    assert "scan" in table["mingru"]["backends"] and "scan" not in table["gru"]["backends"]


def test_a_cell_without_a_description_is_described_by_its_docstring(monkeypatch):
    from rnnkit.cells import cell_class, describe

    monkeypatch.setattr(cell_class("lstm"), "description", "")
    assert describe("lstm") == "The LSTM cell, gate order i, f, g, o as in torch.nn.LSTM"


@pytest.mark.parametrize("argv", [["train", "--cell", "list"], ["train", "lm", "--cell=list"]])
def test_cell_list_where_a_cell_flag_exists_prints_the_same_table(argv, capsys):
    assert main(["cells"]) == 0
    table = capsys.readouterr().out
    assert main(argv) == 0  # lists, trains nothing
    assert capsys.readouterr().out == table


@pytest.mark.parametrize("argv, typo, real", [
    (["train", "--stpes", "10"], "--stpes", "--steps"),
    (["train", "lm", "--stpes", "10"], "--stpes", "--steps"),
    (["train", "--steps", "10", "--hiden=8"], "--hiden", "--hidden"),
    (["sample", "RUN", "--lenght", "5"], "--lenght", "--length"),
    (["sample", "RUN", "--temprature=0.5"], "--temprature", "--temperature"),
    (["evaluate", "RUN", "--spilt", "test"], "--spilt", "--split"),
    (["bench", "core", "--quikc"], "--quikc", "--quick"),  # the benchmark's own flags
    (["bench", "lm", "--max-tmie", "3"], "--max-tmie", "--max-time"),
])
def test_a_mistyped_flag_is_named_with_the_closest_real_one(argv, typo, real, capsys):
    assert _error(capsys, argv) == f"rnnkit: error: unknown flag {typo}; did you mean {real}?\n"


def test_a_command_flag_before_the_command_names_the_command(capsys):
    assert _error(capsys, ["--stpes", "3"]) == (
        "rnnkit: error: unknown flag --stpes; did you mean rnnkit train --steps?\n")


def test_a_flag_like_no_other_points_to_the_help(capsys):
    assert _error(capsys, ["train", "--zzzzzz", "1"]) == (
        "rnnkit: error: unknown flag --zzzzzz; see rnnkit train --help for the flags it takes\n")


def test_other_argparse_errors_are_one_line_too(capsys):
    err = _error(capsys, ["train", "--tokenizer", "xx"])
    assert err.startswith("rnnkit: error: argument --tokenizer: invalid choice: 'xx'")
    assert err.endswith("see rnnkit train --help\n")
    assert "RUN_DIR" in _error(capsys, ["sample"])


@pytest.mark.parametrize("argv, dest, value", [
    (["train", "--steps", "10", "--cell", "gru"], "steps", 10),
    (["train", "lm", "--steps=10", "--no-progress", "--seq-len", "8"], "progress", False),
    (["train", "--ste", "4"], "steps", 4),  # argparse's abbreviations still work
    (["train", "--bptt", "16", "--lr", "-0.5"], "lr", -0.5),  # a negative value
    (["sample", "RUN", "--no-include-prime", "--top-k", "3"], "include_prime", False),
    (["evaluate", "RUN", "--split", "val", "--json"], "split", "val"),
    (["bench", "core", "--quick", "--pairs", "1"], "args", ["--quick", "--pairs", "1"]),
    (["cells", "--json"], "json", True),
])
def test_valid_invocations_still_parse(argv, dest, value):
    parser = build_parser()
    assert unknown_flag(parser, argv) is None
    assert getattr(parser.parse_args(argv), dest) == value


def test_quick_core_bench_says_it_is_a_smoke_run():
    targets = {"met": 21, "total": 29}
    quick = core.verdict(targets, quick=True)
    assert "smoke run" in quick and "too small to judge" in quick and "21" not in quick
    assert core.verdict(targets, quick=False) == "performance goals met: 21 of 29"


def _lm_result(quick: bool) -> dict:
    m = {"parameters": 100, "val_bpc": 3.0, "steps": 2, "tokens_per_second": 10.0}
    return {"quick": quick, "max_time": 1.5, "pairs": 9, "ngram": {"val_bpc": 2.5},
            "corpus": {"dataset": "hello", "train_chars": 900, "val_chars": 50},
            "cells": [{"cell": "lstm", "rnnkit": m, "plain": m, "throughput_ratio": 1.2}],
            "targets": {"lstm": {"lower_bpc_than_plain": False, "throughput_at_least_1x": True,
                                 "both_below_ngram": False}}}


def test_quick_lm_bench_says_it_is_a_smoke_run():
    quick = lm.table(_lm_result(quick=True))
    assert "smoke run" in quick and "missed" not in quick and "met" not in quick
    assert "lstm: goals missed: lower_bpc_than_plain, both_below_ngram" in lm.table(
        _lm_result(quick=False))


def test_help_texts_speak_to_users():
    """No help text refers to the project's internal tracker ("issue 3", "the issue's four")."""
    parser = build_parser()
    texts = [parser.format_help(), core.build_parser().format_help(),
             lm.build_parser().format_help()]
    for sub in parser._subparsers._group_actions[0].choices.values():
        texts.append(sub.format_help())
    for text in texts:
        assert "issue" not in text.lower(), text
