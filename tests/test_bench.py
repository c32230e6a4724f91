"""The benchmark machinery: the CLI run, the saved-bytes counter, the side-by-side timer.
No timing is asserted (the machine is shared): only structure and exact byte counts."""

import json
import statistics

import pytest
import torch

from rnnkit.bench.core import NO_KERNEL
from rnnkit.bench.timing import compare, saved_tensor_bytes
from rnnkit.cells import available, cell_class
from rnnkit.cli.main import main


def test_bench_core_quick_writes_every_row(tmp_path, capsys):
    path = tmp_path / "core.json"
    assert main(["bench", "core", "--quick", "--pairs", "1", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    out = capsys.readouterr().out  # tiny shapes: no verdict on the goals
    assert "smoke run (--quick)" in out and "goals met" not in out
    assert result["machine"]["torch"] == torch.__version__
    speed = {(r["cell"], r["H"], r["impl"]) for r in result["speed"]}
    impls = {"torch.nn", "cell loop", "rnnkit auto", "rnnkit native", "rnnkit bptt",
             "rnnkit autograd"}
    impls.add("rnnkit bptt keep")
    assert speed == {(c, 8, i) for c in ("lstm", "gru") for i in impls}
    no_kernel = {(r["cell"], r["impl"]) for r in result["no_kernel"]}
    assert no_kernel == {(c, i) for c in NO_KERNEL for i in ("rnnkit bptt", "rnnkit autograd")} | {
        (c, "rnnkit bptt keep") for c in NO_KERNEL if cell_class(c).can_keep}
    for row in result["speed"] + result["no_kernel"]:
        assert row["ms"] > 0 and row["pairs"] == 1
    judged = [r for r in result["speed"] + result["no_kernel"] + result["memory"] if "met" in r]
    assert {r["impl"] for r in judged} == {"rnnkit auto", "rnnkit bptt", "rnnkit bptt keep"}
    for row in result["memory"]:  # bytes measured, ratios consistent with them
        ref = next(r for r in result["memory"]
                   if r["cell"] == row["cell"] and r["impl"] == "rnnkit autograd")
        assert row["bytes"] > 0
        assert row["vs rnnkit autograd"] == pytest.approx(row["bytes"] / ref["bytes"])
    if "mingru" in available():
        assert {r["impl"] for r in result["mingru"]} == {"nn.GRU", "mingru scan"}
    compiled = {r["impl"]: r for r in result["compiled"]}  # torch.compile, side by side
    assert set(compiled) == {"compiled torch.nn", "compiled rnnkit"}
    assert compiled["compiled rnnkit"]["target"] == ">= 1.0x compiled torch.nn"
    regs = {r["impl"]: r for r in result["regularisers"]}  # each beside the plain LSTM
    assert set(regs) == {"torch.nn", "rnnkit auto", "rnnkit auto recurrent_dropout 0.25",
                         "cell loop recurrent_dropout 0.25", "rnnkit auto zoneout 0.1",
                         "cell loop zoneout 0.1"}
    for name in ("recurrent_dropout 0.25", "zoneout 0.1"):
        row = regs[f"rnnkit auto {name}"]
        assert row["picked"] == "bptt" and row["target"] == "<= 1.2x rnnkit auto's time"
        assert row["vs same in cell loop"] == pytest.approx(
            regs[f"cell loop {name}"]["ms"] / row["ms"])
    user = {r["impl"]: r for r in result["user_cell"]}  # the README's cell, its own loop
    assert set(user) == {"user cell autograd", "user cell bptt"}
    assert user["user cell bptt"]["vs autograd loop"] == pytest.approx(
        user["user cell autograd"]["ms"] / user["user cell bptt"]["ms"])
    assert "met" not in user["user cell bptt"]  # its goal is at H = 256 only
    assert result["targets"]["total"] == len(judged) + sum(
        "met" in r for r in result.get("mingru", []) + result["compiled"]
        + result["regularisers"])


def test_bench_core_rejects_bad_shapes(capsys):
    assert main(["bench", "core", "--shapes", "3,4,5"]) == 2
    assert "B,T,I,H" in capsys.readouterr().err
    assert main(["bench", "core", "--cells", "lstm,nope"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_bench_core_cells_picks_rows(tmp_path):
    path = tmp_path / "core.json"
    assert main(["bench", "core", "--quick", "--pairs", "1", "--only", "no-kernel", "memory",
                 "--cells", "mut2", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert {r["cell"] for r in result["no_kernel"] + result["memory"]} == {"mut2"}


def test_bench_user_cell_judges_its_goal_at_h256(tmp_path, capsys):
    from rnnkit.bench.core import bench_user_cell
    rows = bench_user_cell([(2, 3, 4, 256)], pairs=1, warmup=0, log=lambda rows: None)
    bptt = next(r for r in rows if r["impl"] == "user cell bptt")
    assert bptt["target"] == ">= 1.2x autograd loop"
    assert bptt["met"] == (bptt["vs autograd loop"] >= 1.2)
    assert bench_user_cell([(2, 3, 4, 8)], 1, 0, print, path=tmp_path / "none.py") == []
    assert "skipped" in capsys.readouterr().out


def test_saved_bytes_counts_each_storage_once():
    w = torch.ones(10, requires_grad=True, dtype=torch.float64)  # 80 bytes
    x = torch.ones(3, 4, requires_grad=True)  # 48 bytes
    # w * w saves w twice; x[0] and x[1] are views of x's storage; exp saves its output
    assert saved_tensor_bytes(lambda: (w * w).sum()) == 80
    assert saved_tensor_bytes(lambda: (x[0] * x[1]).sum()) == 48
    assert saved_tensor_bytes(lambda: x.exp().sum()) == 48
    assert saved_tensor_bytes(lambda: (x * 2).sum()) == 0  # a constant factor saves nothing
    assert saved_tensor_bytes(lambda: (w * w).sum() + (x[0] * x[2]).sum()) == 128


def test_saved_bytes_sees_save_for_backward():
    class Keep(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            out = a * 3
            ctx.save_for_backward(a, out, out[:2])  # a view of out: not counted again
            return out

        @staticmethod
        def backward(ctx, g):
            return g * 3

    a = torch.ones(5, 7, requires_grad=True)
    assert saved_tensor_bytes(lambda: Keep.apply(a)) == 2 * 5 * 7 * 4


def test_compare_returns_medians_and_consistent_ratios():
    calls = {"a": 0, "b": 0}

    def count(name):
        def f():
            calls[name] += 1
            return sum(range(2000 if name == "a" else 100))
        return f

    r = compare({"a": count("a"), "b": count("b")}, pairs=5, warmup=2)
    assert calls == {"a": 7, "b": 7}
    assert set(r["seconds"]) == {"a", "b"} and r["baseline"] == "a"
    for name in ("a", "b"):
        assert len(r["times"][name]) == 5
        assert r["seconds"][name] == statistics.median(r["times"][name])
        assert r["ratios"][name] == pytest.approx(r["seconds"]["a"] / r["seconds"][name])
    assert r["ratios"]["a"] == 1.0
    assert compare({"a": count("a"), "b": count("b")}, 3, 0, baseline="b")["ratios"]["b"] == 1.0
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": count("a")}, baseline="c")
