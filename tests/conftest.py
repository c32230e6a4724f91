import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _cpu_outside_test_gpu(request, monkeypatch):
    """The suite pins what the CPU computes exactly (a resumed run equals the uninterrupted one,
    evaluate equals the summary's score): on a GPU machine ``--device auto`` would take CUDA,
    whose kernels are not bit-reproducible and round matmuls (TF32, bf16). tests/test_gpu.py
    checks CUDA against the CPU with tolerances; everywhere else the GPU is hidden, from
    subprocesses (torchrun, the CLI) too."""
    if request.module.__name__.endswith("test_gpu"):
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and on a busy machine two threads spin)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
