"""`rnnkit export RUN --onnx FILE`: every task's trained network as ONNX, run in onnxruntime.

Run directories are built by hand around tiny untrained models (training adds nothing to what
is checked: the graph against PyTorch on the same weights), as ``rnnkit train`` writes them.
The export itself checks each graph at another batch size and length than it was recorded
with; the tests check again from outside, through the task's own Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data import build_tokenizer
from rnnkit.data.skipgram import Vocab as WordVocab
from rnnkit.data.vocab import BOS_ID, EOS_ID, Vocab, save_vocabs
from rnnkit.export import DECODER_SUFFIX, export, export_onnx, run_onnx
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.conditioned import ConditionedLM
from rnnkit.models.forecaster import Forecaster
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.synced import SyncedRNN
from rnnkit.models.tagger import SequenceTagger
from rnnkit.models.word2vec import Word2Vec
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.tagger import save_vocab

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TEXT = "the cat sat on the mat. a dog ran under the tree.\n" * 4
ATOL = 1e-5


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(one_thread):
    pass


def _run(path: Path, task: str, model: torch.nn.Module, **config) -> Path:
    """A run directory as ``rnnkit train TASK`` writes it, around ``model``."""
    (path / "checkpoints").mkdir(parents=True)
    cfg = {"task": task, "model": model.config, **config}
    (path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    save_checkpoint(path / "checkpoints" / "best.safetensors", model, None, {"step": 1})
    return path


def build(task: str, path: Path, cell: str = "lstm") -> Path:
    """A tiny run of ``task`` (weights random, shapes as training makes them)."""
    torch.manual_seed(0)
    tok = build_tokenizer("char", TEXT)
    V = tok.vocab_size
    if task == "lm":
        run = _run(path, task, LanguageModel(V, cell=cell, embed=6, hidden=8, layers=2))
    elif task == "generator":
        m = ConditionedLM(V, num_labels=2, cell=cell, embed=6, hidden=8, layers=2)
        run = _run(path, task, m, labels=["A", "B"])
    elif task in ("classifier", "tagger"):
        cls = SequenceClassifier if task == "classifier" else SequenceTagger
        if task == "tagger":
            vocab = Vocab.build(TEXT.split("\n"), "char", "input")
            m = cls(len(vocab), 3, cell=cell, embed=6, hidden=8, layers=2)
            run = _run(path, task, m, tags=["O", "X", "Y"])
            save_vocab(run / "checkpoints", vocab)
            return run
        m = cls(V, 3, cell=cell, embed=6, hidden=8, layers=2, readout="attention")
        run = _run(path, task, m, classes=["neg", "neu", "pos"])
    elif task == "synthetic":
        return _run(path, task, SyncedRNN(2, 2, cell=cell, hidden=8), dataset="binary-add")
    elif task == "forecaster":
        m = Forecaster(2, horizon=3, cell=cell, hidden=8, layers=2, lags=4)
        return _run(path, task, m, scaling={"series": {"y": [0.5, 2.0]}, "exog": []})
    elif task == "seq2seq":
        src = Vocab.build(["535+61", "12+7"], "char", "source")
        tgt = Vocab.build(["596", "19"], "char", "target")
        m = Seq2Seq(len(src), len(tgt), cell=cell, embed=6, hidden=8, layers=2,
                    attention="bahdanau", max_length=6)
        run = _run(path, task, m)
        save_vocabs(run / "checkpoints", src, tgt)
        return run
    elif task == "word2vec":
        words = sorted(set(TEXT.split()))
        m = Word2Vec(len(words), dim=5)
        run = _run(path, task, m)
        WordVocab(words, np.ones(len(words), dtype=np.int64)).save(run / "checkpoints" /
                                                                    "vocab.json")
        return run
    tok.save(run / "checkpoints")
    return run


TASKS = ("lm", "generator", "classifier", "tagger", "synthetic", "forecaster", "seq2seq",
         "word2vec")


def metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_exports_a_graph_that_matches_pytorch_in_onnxruntime(task, tmp_path):
    run = build(task, tmp_path / "run")
    done = export(run, tmp_path / "m.onnx")
    assert [e.path.name for e in done] == ["m.onnx"] + (["m" + DECODER_SUFFIX]
                                                        if task == "seq2seq" else [])
    for e in done:
        assert e.max_abs_diff is not None and e.max_abs_diff <= ATOL, e
        assert e.steps is None  # torch's kernels: batch and time are dynamic
        meta = metadata(e.path)
        assert meta["rnnkit.task"] == task and meta["rnnkit.graph"] == e.graph
        assert list(json.loads(meta["rnnkit.inputs"])) == e.inputs
        assert list(json.loads(meta["rnnkit.outputs"])) == e.outputs
        session = ort.InferenceSession(str(e.path))
        assert [i.name for i in session.get_inputs()] == e.inputs
        assert [o.name for o in session.get_outputs()] == e.outputs
        vocab = meta["rnnkit.vocabulary"]
        assert (Path(vocab).is_file() and Path(vocab).parent == (run / "checkpoints").resolve()
                if task not in ("synthetic", "forecaster") else vocab == "")


def _data(d: Path, task: str) -> list[str]:
    """The data flags of a few steps of ``rnnkit train TASK`` on a small file."""
    words = "ant bee cat dog eel fox gnu hen".split()
    rows = [(" ".join(words[(i + k) % 8] for k in range(2 + i % 3)), "AB"[i % 2])
            for i in range(60)]
    if task == "lm":
        (d / "t.txt").write_text(TEXT * 8, encoding="utf-8")
        return ["--text", str(d / "t.txt")]
    if task in ("classifier", "generator"):
        (d / "r.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows),
                                 encoding="utf-8")
        cols = ["--text-column", "text", "--label-column", "label"] if task == "classifier" \
            else []
        return ["--csv", str(d / "r.csv"), *cols]
    if task == "tagger":
        lines = [f"{w} NN {'X' if w[0] in 'aeiou' else 'O'}\n" for t, _ in rows
                 for w in t.split()]
        (d / "t.conll").write_text("".join(line + ("\n" if i % 3 == 2 else "")
                                           for i, line in enumerate(lines)), encoding="utf-8")
        return ["--conll", str(d / "t.conll"), "--embed", "4"]
    if task == "seq2seq":
        (d / "p.tsv").write_text("".join(f"{t}\t{t[::-1]}\n" for t, _ in rows),
                                 encoding="utf-8")
        return ["--tsv", str(d / "p.tsv"), "--embed", "4"]
    return ["--dataset", "binary-add", "--val-size", "5", "--test-size", "3",
            "--feedforward-steps", "0"]


@pytest.mark.parametrize("task", ["lm", "classifier", "generator", "tagger", "seq2seq",
                                  "synthetic"])
def test_a_run_that_training_wrote_exports(task, tmp_path, capsys):
    """Three steps of ``rnnkit train TASK`` (the forecaster's ARIMA takes too long here:
    its run is built by hand above), then ``rnnkit export`` of what it wrote."""
    run = tmp_path / "run"
    assert main(["train", task, *_data(tmp_path, task), "--steps", "3", "--hidden", "8",
                 "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx"), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert len(files) == (2 if task == "seq2seq" else 1)
    assert all(f["max_abs_diff"] <= ATOL and f["time_steps"] == "dynamic" for f in files)


def test_the_language_model_streams_in_chunks_with_its_state(tmp_path):
    """Two chunks through the graph, the state carried, = the whole text through PyTorch,
    at a batch and length the export never saw."""
    run = build("lm", tmp_path / "run")
    (path,) = export_onnx(run, tmp_path / "lm.onnx")
    m = rnnkit.load(run)
    ids = torch.tensor([m.tokenizer.encode(TEXT[:23]), m.tokenizer.encode(TEXT[5:28])]).T
    with torch.no_grad():
        want, _ = m.model(ids)
    h = c = torch.zeros(2, 2, 8)
    first = run_onnx(path, {"tokens": ids[:10], "h": h, "c": c})
    second = run_onnx(path, {"tokens": ids[10:], "h": first[1], "c": first[2]})
    torch.testing.assert_close(torch.cat([first[0], second[0]]), want, atol=ATOL, rtol=0)
    assert metadata(path)["rnnkit.vocabulary"].endswith("tokenizer.json")


def test_a_generator_starts_from_its_label_where_start_is_set(tmp_path):
    run = build("generator", tmp_path / "run")
    (path,) = export_onnx(run, tmp_path / "g.onnx")
    g = rnnkit.load(run)
    ids, labels = torch.randint(g.model.vocab_size, (7, 4)), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        want, _ = g.model(ids, labels=labels)
    zeros = torch.zeros(2, 4, 8)
    got = run_onnx(path, {"tokens": ids, "condition": labels, "start": torch.ones(4, dtype=bool),
                          "h": zeros, "c": zeros})
    torch.testing.assert_close(got[0], want, atol=ATOL, rtol=0)
    assert json.loads(metadata(path)["rnnkit.labels"]) == ["A", "B"]


@pytest.mark.parametrize("task", ["classifier", "tagger"])
def test_padded_batches_take_their_lengths(task, tmp_path):
    run = build(task, tmp_path / "run")
    (path,) = export_onnx(run, tmp_path / "m.onnx")
    model = rnnkit.load(run).model
    x, lengths = torch.randint(1, model.config["vocab_size"], (11, 5)), torch.tensor(
        [11, 3, 7, 1, 10])
    with torch.no_grad():
        want = model(x, lengths)
    (got,) = run_onnx(path, {"tokens": x, "lengths": lengths})
    if task == "tagger":  # the scores at padded steps mean nothing
        keep = torch.arange(11)[:, None] < lengths[None]
        got, want = got[keep], want[keep]
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    labels = json.loads(metadata(path)["rnnkit.labels"])
    assert labels == (["neg", "neu", "pos"] if task == "classifier" else ["O", "X", "Y"])


def test_greedy_decoding_with_the_two_seq2seq_graphs_is_the_translators(tmp_path):
    run = build("seq2seq", tmp_path / "run")
    encoder, decoder = export_onnx(run, tmp_path / "s.onnx")
    model = rnnkit.load(run).model
    src, lengths = torch.randint(4, model.config["source_vocab"], (6, 3)), torch.tensor([6, 2, 4])
    want, _ = model.greedy(src, lengths, max_length=6)
    memory, keys, mask, final, h, c = run_onnx(encoder, {"source": src, "lengths": lengths})
    meta = metadata(encoder)
    assert meta["rnnkit.decoder"] == "s" + DECODER_SUFFIX and int(meta["rnnkit.bos_id"]) == BOS_ID
    y, out = torch.full((3,), BOS_ID), []
    for _ in range(6):
        logits, h, c, _att = run_onnx(decoder, {"y_prev": y, "memory": memory, "keys": keys,
                                                "mask": mask, "final": final, "h": h, "c": c})
        y = logits.argmax(-1)
        out.append(y)
    ids = torch.stack(out, 1).tolist()
    got = [row[:row.index(EOS_ID)] if EOS_ID in row else row for row in ids]
    assert got == want


@pytest.mark.parametrize("task", ["lm", "classifier"])
def test_a_cell_without_a_torch_kernel_exports_a_fixed_number_of_steps(task, tmp_path, capsys):
    run = build(task, tmp_path / "run", cell="mut1")
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx"), "--steps", "12",
                 "--json"]) == 0
    (file,) = json.loads(capsys.readouterr().out)["files"]
    assert file["time_steps"] == (1 if task == "lm" else 12)  # the lm: one step a call
    assert file["max_abs_diff"] <= ATOL


def test_the_command_prints_what_it_wrote(tmp_path, capsys):
    run = build("seq2seq", tmp_path / "run")
    assert main(["export", str(run), "--onnx", str(tmp_path / "t.onnx"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "seq2seq"
    assert [Path(f["path"]).name for f in out["files"]] == ["t.onnx", "t.decoder.onnx"]
    assert all(f["max_abs_diff"] <= ATOL for f in out["files"])
    assert main(["export", str(run), "--onnx", str(tmp_path / "t.onnx")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "seq2seq encoder: source, lengths ->" in lines[0]


@pytest.mark.parametrize("argv,words", [
    (["export", "{tmp}/nope", "--onnx", "{tmp}/m.onnx"], "no such run directory"),
    (["export", "{run}"], "--onnx"),
    (["export", "{run}", "--onnx", "{tmp}/m.txt"], ".onnx suffix"),
    (["export", "{run}", "--onnx", "{tmp}/no/m.onnx"], "does not exist"),
    (["export", "{run}", "--onnx", "{tmp}/m.onnx", "--checkpoint", "last"], "no last checkpoint"),
    (["export", "{tmp}", "--onnx", "{tmp}/m.onnx"], "not an rnnkit run directory"),
])
def test_a_users_mistake_is_one_line_and_status_2(argv, words, tmp_path, capsys):
    run = build("lm", tmp_path / "run")
    argv = [a.format(tmp=tmp_path, run=run) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: ") and words in err[0], err
    assert not (tmp_path / "m.onnx").exists()
