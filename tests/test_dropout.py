import torch

from rnnkit.layers.dropout import LockedDropout


def test_one_mask_per_sequence_shared_over_time_and_unbiased():
    torch.manual_seed(0)
    drop = LockedDropout(0.3).train()
    x = torch.ones(50, 400, 64)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))  # the same units dropped at every step
    kept = y[0] != 0
    assert torch.allclose(y[0][kept], torch.full_like(y[0][kept], 1 / 0.7))
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # 25,600 draws: 0.7 +- 0.003 (1 sd)
    assert abs(y.mean().item() - 1.0) < 0.02  # expectation preserved


def test_identity_in_eval_and_at_zero():
    x = torch.randn(5, 3, 4)
    assert LockedDropout(0.5).eval()(x) is x
    assert LockedDropout(0.0).train()(x) is x
