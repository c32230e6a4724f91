"""The layers of the package point one way: the cells hold the seeds' math and import nothing
from the engine, which runs them (issue 16: the compiled loops reach the cells through
cells/kernels.py, handed over by engine/compiled.py)."""

import ast
from pathlib import Path

import torch

CELLS = Path(__file__).resolve().parents[1] / "src" / "rnnkit" / "cells"


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_cells_import_nothing_from_the_engine():
    files = sorted(CELLS.glob("*.py"))
    assert len(files) > 10
    bad = {f.name: m for f in files for m in _imports(f)
           if m.startswith("..engine") or m.startswith("rnnkit.engine")}
    assert bad == {}


def test_the_engine_hands_the_compiled_loops_to_the_cells():
    from rnnkit.cells import kernels
    from rnnkit.engine import compiled

    x = torch.zeros(2)
    assert (kernels.ops() is None) == (compiled.ops() is None)
    with compiled.disabled():  # switched off in the engine: the cells see none either
        assert kernels.ops() is None and kernels.usable(x) is None
    assert kernels.usable(x.to(torch.float16)) is None
