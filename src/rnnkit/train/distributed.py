"""Several processes through ``torchrun`` (DistributedDataParallel; gloo on the CPU, nccl on GPUs).

``torchrun --nproc_per_node=2 -m rnnkit train lm ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
each process reads its share of every global batch, DDP averages the gradients, and only
rank 0 writes the run directory and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = "gloo"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                dist.get_backend())


def check_gpus(device: torch.device) -> None:
    """torchrun gives each process of a machine the GPU of its local rank: more processes than
    GPUs cannot run (the extra ranks would name a device that does not exist), so every rank
    says so before any of them joins the group and waits for the others."""
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda" and per_machine > torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise UserError(f"torchrun started {per_machine} processes on this machine but it has "
                        f"{gpus} GPU{'s' * (gpus != 1)}: one process per GPU; use "
                        f"--nproc_per_node {gpus}, or --device cpu for CPU processes")


def free_memory(device: torch.device) -> int | None:
    """Bytes this process could still allocate on ``device``: the GPU's free memory, or the
    system's MemAvailable on Linux; None where neither can be read (no check then)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(d: Dist, *values: float) -> list[float]:
    """Sum numbers over the ranks (the numbers themselves when alone)."""
    if not d.active:
        return list(values)
    on = torch.device("cuda", d.local_rank) if d.backend == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(d: Dist, flag: bool) -> bool:
    """True on every rank when it is true on at least one (a stop decision everyone takes)."""
    return bool(all_sum(d, float(flag))[0] > 0) if d.active else flag
