"""What a resumed run needs besides the weights, as safetensors tensors plus JSON.

The optimizer's moments and the RNG states are tensors (bit-exact in safetensors); the
optimizer's hyper-parameters, the scheduler's counters and Python's and NumPy's generator
states are JSON (integers, and floats written by ``repr``, which round-trip exactly).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, json) for ``opt.state_dict()``."""
    sd = opt.state_dict()
    tensors, plain = {}, {}
    for idx, slots in sd["state"].items():
        plain[str(idx)] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain[str(idx)][key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """The torch (CPU and CUDA), Python and NumPy generator states."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    plain = {"python": [version, list(internal), gauss],
             "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return tensors, plain


def load_rng_state(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = plain["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))


def seed_everything(seed: int) -> None:
    """Seed torch, Python and NumPy (CPU runs are then bit-for-bit repeatable)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
