"""Side-by-side timing and memory counting shared by the benchmarks.

These machines are noisy (the same step can take 13 ms in one run and 35 ms in the next), so
nothing is timed alone: ``compare`` runs every contender once per round, in a rotated order,
and reports medians over rounds and ratios to a baseline taken from those medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch


def compare(fns: dict[str, Callable[[], object]], pairs: int = 9, warmup: int = 2,
            baseline: str | None = None) -> dict:
    """Time every function in ``fns`` interleaved: ``warmup`` untimed rounds, then ``pairs``
    rounds in which each runs once (the order rotates, so none is always first).

    Returns ``{"seconds": {name: median}, "ratios": {name: median[baseline] / median[name]},
    "baseline": name, "pairs": pairs, "times": {name: [every round's seconds]}}``; a ratio above
    1 means faster than the baseline (the first function unless ``baseline`` is given).

    Example:
        >>> r = compare({"a": lambda: sum(range(100)), "b": lambda: sum(range(200))}, pairs=3)
        >>> sorted(r["seconds"]), r["ratios"]["a"]
        (['a', 'b'], 1.0)
    """
    if not fns:
        raise ValueError("compare needs at least one function to time")
    if pairs < 1 or warmup < 0:
        raise ValueError(f"pairs must be >= 1 and warmup >= 0, got {pairs} and {warmup}")
    names = list(fns)
    baseline = names[0] if baseline is None else baseline
    if baseline not in fns:
        raise ValueError(f"baseline {baseline!r} is not one of {names}")
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + pairs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            fns[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    seconds = {n: statistics.median(ts) for n, ts in times.items()}
    ratios = {n: seconds[baseline] / s for n, s in seconds.items()}
    return {"seconds": seconds, "ratios": ratios, "baseline": baseline, "pairs": pairs,
            "times": times}


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``fn`` runs (its
    forward): every tensor packed by ``torch.autograd.graph.saved_tensors_hooks``, including
    what an ``autograd.Function`` passes to ``ctx.save_for_backward``. Each storage is counted
    once, so views of one tensor (or one tensor saved twice) are not double counted.

    Example:
        >>> import torch
        >>> w = torch.ones(10, requires_grad=True)
        >>> saved_tensor_bytes(lambda: (w * w).sum())  # w saved twice: one storage, 40 bytes
        40
    """
    storages: dict[tuple[int, str], int] = {}
    kept: list[torch.Tensor] = []  # holds every packed tensor, so no address is reused meanwhile

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[(s.data_ptr(), str(t.device))] = s.nbytes()
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    del result, kept[:]  # the graph (and the tensors it kept) goes with them
    return sum(storages.values())


def machine() -> dict:
    """Where a benchmark ran: CPU model, cores, threads, torch and Python versions."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_json(path: str | Path, result: dict) -> Path:
    """Write ``result`` as indented JSON (to a temporary name first, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path
