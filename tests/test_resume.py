"""Resume: a run stopped at any moment and resumed ends exactly as an uninterrupted run.

Fast: the run is interrupted in-process (an exception after a chosen step, before or after
its checkpoint). Slow: a real subprocess killed with SIGKILL at random moments.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.train import trainer as trainer_mod
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.lm import run_lm

TEXT = ("the quick brown fox jumps over the lazy dog. " * 4
        + "pack my box with five dozen liquor jugs.\n") * 3
VOLATILE = ("elapsed", "tokens_per_second", "train_seconds")


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass



def _settings(text_file, out, **kw):
    return {"text": str(text_file), "hidden": 16, "embed": 8, "layers": 2, "dropout": 0.2,
            "batch_size": 4, "seq_len": 8, "steps": 60, "warmup": 5, "lr": 0.01,
            "checkpoint_every": 4, "eval_every": 10, "log_every": 3, "sample_length": 20,
            "progress": False, "out": str(out), **kw}


def _stable(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _outcome(out):
    out = Path(out)
    last = load_checkpoint(out / "checkpoints" / "last.safetensors")
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    samples = (out / "samples.txt").read_text()
    return last.model_state, _stable(metrics), _stable([summary])[0], samples


def _assert_same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        assert torch.equal(a[0][k], b[0][k]), k
    assert a[1] == b[1]  # metrics lines: none lost, none duplicated, same values
    a_sum = {k: v for k, v in a[2].items() if k != "out"}
    b_sum = {k: v for k, v in b[2].items() if k != "out"}
    assert a_sum == b_sum
    assert a[3] == b[3]


class Crash(Exception):
    pass


@pytest.mark.parametrize("stateless", [False, True])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, stateless):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    run_lm(_settings(text, tmp_path / "ref", stateless=stateless))
    reference = _outcome(tmp_path / "ref")

    original = trainer_mod.Trainer._after_step
    crashes = iter([(7, "before"), (21, "after"), (30, "before"), (48, "after"), (None, "")])
    when = {"at": next(crashes)}

    def crashing(self, bar):
        step, moment = when["at"]
        if self.p.step == step and moment == "before":
            raise Crash  # killed after the step, before its log line and checkpoint
        original(self, bar)
        if self.p.step == step:
            raise Crash  # killed right after the checkpoint

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", crashing)
    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        run_lm(_settings(text, out, stateless=stateless))
    for _ in range(4):
        when["at"] = next(crashes)
        try:
            run_lm({"resume": str(out)})
        except Crash:
            continue
    _assert_same(_outcome(out), reference)


def test_resume_refuses_changed_settings(tmp_path):
    from rnnkit.errors import UserError

    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    run_lm(_settings(text, tmp_path / "r", steps=4))
    with pytest.raises(UserError, match="--hidden differs"):
        run_lm({"resume": str(tmp_path / "r"), "hidden": 32})
    summary = run_lm({"resume": str(tmp_path / "r"), "steps": 8})  # a bigger budget is fine
    assert summary["steps"] == 8


def _spawn(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(Path(cwd) / "stderr.log", "ab")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen([sys.executable, "-m", "rnnkit", "train", "lm", *args], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=log)


def test_sigkill_at_random_moments_then_resume(tmp_path):
    """The requirement as stated: SIGKILL a real training process at random moments (after its
    first checkpoint), resume until done; parameters and metrics equal an uninterrupted run."""
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 3)
    flags = ["--text", str(text), "--hidden", "16", "--embed", "8", "--layers", "2",
             "--dropout", "0.2", "--batch-size", "4", "--seq-len", "8", "--steps", "300",
             "--warmup", "5", "--lr", "0.01", "--checkpoint-every", "3", "--eval-every", "25",
             "--log-every", "3", "--sample-length", "20", "--no-progress"]
    rc = _spawn([*flags, "--out", str(tmp_path / "ref")], tmp_path).wait(300)
    assert rc == 0, (tmp_path / "stderr.log").read_text()[-2000:]
    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.safetensors"
    rng, kills = random.Random(0), 0
    proc = _spawn([*flags, "--out", str(out)], tmp_path)
    while True:
        deadline = time.time() + 120
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if kills < 4 and proc.poll() is None:
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.wait(300) == 0
            break
        proc = _spawn(["--resume", str(out)], tmp_path)
    assert kills >= 2  # the run really was killed (and resumed) along the way
    _assert_same(_outcome(out), _outcome(tmp_path / "ref"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_and_resume_equals_uninterrupted(tmp_path, monkeypatch, sig):
    """Ctrl-C or SIGTERM mid-run: the run stops after that step with a resumable checkpoint
    (status interrupted, no final scores); --resume then ends as the uninterrupted run."""
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    run_lm(_settings(text, tmp_path / "ref"))
    original = trainer_mod.Trainer._after_step

    def signalled(self, bar):
        original(self, bar)
        if self.p.step == 23:  # between checkpoints (every 4) and evaluations (every 10)
            signal.raise_signal(sig)

    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", signalled)
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # default, or ignored when started in background
    stopped = run_lm(_settings(text, out))
    assert (stopped["status"], stopped["steps"], stopped["signal"]) == (
        "interrupted", 23, signal.Signals(sig).name)
    assert load_checkpoint(out / "checkpoints" / "last.safetensors").metadata["step"] == 23
    assert "test_bpc" not in stopped
    monkeypatch.setattr(trainer_mod.Trainer, "_after_step", original)
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are restored
    run_lm({"resume": str(out)})
    _assert_same(_outcome(out), _outcome(tmp_path / "ref"))


def test_sigterm_to_the_cli_prints_the_resume_command(tmp_path):
    """A real `rnnkit train` process sent SIGTERM: exit 143, one line naming the checkpoint
    and the command that continues it; resuming says what of the budget is left."""
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 3)
    out = tmp_path / "run"
    flags = ["--text", str(text), "--hidden", "16", "--embed", "8", "--batch-size", "4",
             "--seq-len", "8", "--steps", "100000", "--max-time", "60", "--eval-every", "50",
             "--sample-length", "5", "--no-progress", "--threads", "1", "--out", str(out)]
    proc = _spawn(flags, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and metrics.stat().st_size > 2000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    err = (tmp_path / "stderr.log").read_text().strip().splitlines()[-1]
    assert err.startswith("rnnkit: SIGTERM at step ")
    assert err.endswith(f"continue with: rnnkit train lm --resume {out}")
    step = load_checkpoint(out / "checkpoints" / "last.safetensors").metadata["step"]
    assert f"at step {step:,}:" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == step

    resumed = subprocess.run([sys.executable, "-m", "rnnkit", "train", "lm", "--resume",
                              str(out), "--steps", str(step + 5), "--threads", "1"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    line = next(x for x in resumed.stderr.splitlines() if x.startswith("resuming"))
    assert f"at step {step:,}" in line and "5 of " in line and "s of --max-time 60 left" in line
