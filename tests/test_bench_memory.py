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
