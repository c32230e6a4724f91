"""`rnnkit bench memory`: the table of which cell learns which span (smoke size)."""

import json

from rnnkit.bench import memory
from rnnkit.cli.main import main


def test_quick_table_and_json(tmp_path, capsys, one_thread):
    out = tmp_path / "m.json"
    assert memory.main(["--quick", "--cells", "lstm", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["benchmark"] == "memory" and result["quick"] and result["lengths"] == [10]
    rows = {(r["task"], r["row"]) for r in result["runs"]}
    assert rows == {(t, r) for t in ("adding", "copy") for r in ("lstm", "lstm (no clip)")}
    assert all(r["steps"] > 0 and r["score"] is not None for r in result["runs"])
    assert set(result["longest_solved"]) == {"lstm", "lstm (no clip)"}
    assert "adding T=10" in printed and "copy T=10" in printed and "lstm (no clip)" in printed
    assert "too short to judge" in printed
    assert all(r["budget"] == {"max_time": 0.5} and r["train_seconds"] > 0
               for r in result["runs"])


def test_default_budget_is_steps_by_task_and_length():
    from rnnkit.train.synthetic import default_steps

    adding = [memory.budget("adding", n)["steps"] for n in memory.LENGTHS]
    copy = [memory.budget("copy", n)["steps"] for n in memory.LENGTHS]
    assert adding == sorted(adding) and adding[0] < adding[-1]  # more steps for longer spans
    assert copy == [default_steps("copy", n) for n in memory.LENGTHS]
    # a step costs about T: every column's budget in step x T grows with T
    for steps in (adding, copy):
        work = [s * n for s, n in zip(steps, memory.LENGTHS, strict=True)]
        assert work == sorted(work)
    assert memory.budget("adding", 500, steps=7) == {"steps": 7}
    assert memory.budget("copy", 50, max_time=3.0) == {"max_time": 3.0}


def test_two_jobs_side_by_side_give_the_plan_in_order(tmp_path, capsys):
    out = tmp_path / "runs"
    assert memory.main(["--cells", "rnn_tanh", "gru", "--tasks", "adding", "--lengths", "4",
                        "6", "--steps", "3", "--jobs", "2", "--out", str(out),
                        "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert [(r["length"], r["row"]) for r in result["runs"]] == [
        (n, row) for n in (4, 6) for row in ("rnn_tanh", "rnn_tanh (no clip)", "gru")]
    assert all(r["steps"] == 3 and r["budget"] == {"steps": 3} for r in result["runs"])
    assert (out / "adding-6-gru-clip1" / "summary.json").is_file()  # kept for analysis
    assert "adding T=4: 3 steps" in capsys.readouterr().out


def test_rows_and_longest_solved():
    assert memory.rows_for(["lstm", "gru"], 1.0) == [("lstm", 1.0), ("lstm", 0.0), ("gru", 1.0)]
    runs = [{"row": "gru", "task": "adding", "length": n, "solved": n < 300}
            for n in (50, 200, 500)]
    assert memory.longest_solved(runs) == {"gru": {"adding": 200}}


def test_bad_options_exit_2(capsys):
    assert main(["bench", "memory", "--cells", "transformer"]) == 2
    assert "unknown cell 'transformer'" in capsys.readouterr().err
    assert main(["bench", "memory", "--lengths", "1"]) == 2
    assert "--lengths must be whole numbers of at least 2" in capsys.readouterr().err
    assert main(["bench", "memory", "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
