"""Scores as data (``rnnkit.data.music``) and the genre classifier on them: the parse cache,
piano rolls and baseline features against hand-made examples, MIDI round trips, bad scores,
and a tiny ``rnnkit train classifier --dataset music-genre`` run with ``rnnkit.load``."""

import io
import json
import random

import pytest
import torch
from music21 import chord, note, stream, tie

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data import music
from rnnkit.data.labelled import load_music_genre
from rnnkit.errors import UserError
from rnnkit.train.classifier import Encoded, pad


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fake_corpus(monkeypatch):
    """Four pieces a genre, parsed by a counting stand-in for music21: the notes of piece i
    of genre g are its own (so a mixed-up cache entry would show); ``bad`` pieces fail."""
    calls: list[str] = []
    bad: set[str] = set()

    def parse(piece_id):
        calls.append(piece_id)
        if piece_id in bad:
            raise ValueError("not a score")
        genre, i = piece_id.split("/")
        return [(60 + music.GENRES.index(genre), float(k), 0.5 + int(i), k % 2)
                for k in range(3)]

    monkeypatch.setattr(music, "corpus_ids", lambda g: [f"{g}/{i}" for i in range(4)])
    monkeypatch.setattr(music, "parse_piece", parse)
    return calls, bad


# ---- the cache ----------------------------------------------------------------------------

def test_pieces_are_parsed_once_then_read_from_the_cache(fake_corpus):
    calls, _ = fake_corpus
    first, skipped = music.genre_pieces(2)
    assert len(calls) == 6 and skipped == 0
    assert sorted(first) == sorted(calls)
    again, _ = music.genre_pieces(2)
    assert len(calls) == 6  # nothing parsed the second time
    assert again == first
    for piece_id, (genre, notes) in first.items():
        i = int(piece_id.split("/")[1])
        assert piece_id.startswith(genre)
        assert notes == [(60 + music.GENRES.index(genre), float(k), 0.5 + i, k % 2)
                         for k in range(3)]
    # the choice is the fixed order's first pieces, the same however many are asked for
    more, _ = music.genre_pieces(3)
    assert set(first) < set(more) and len(calls) == 9
    assert all(p in music.ordered(music.corpus_ids(p.split("/")[0]))[:3] for p in more)


def test_a_damaged_entry_is_parsed_again_and_the_rest_kept(fake_corpus):
    calls, _ = fake_corpus
    first, _ = music.genre_pieces(2)
    victim = sorted(first)[0]
    entry = music._entry(victim)
    entry.write_text('{"version": 1, "id": "' + victim + '", "notes": [[60, 0')  # cut short
    others = {p: music._entry(p).read_bytes() for p in first if p != victim}
    calls.clear()
    again, _ = music.genre_pieces(2)
    assert calls == [victim] and again == first
    assert json.loads(entry.read_text())["notes"] == [list(n) for n in first[victim][1]]
    assert all(music._entry(p).read_bytes() == data for p, data in others.items())
    # an entry of another version is stale: parsed again too
    entry.write_text(json.dumps({"version": 0, "id": victim, "notes": []}))
    calls.clear()
    music.genre_pieces(2)
    assert calls == [victim]


def test_an_unreadable_piece_is_skipped_counted_and_remembered(fake_corpus):
    calls, bad = fake_corpus
    order = music.ordered(music.corpus_ids("folk"))
    bad.add(order[0])
    pieces, skipped = music.genre_pieces(2)
    assert skipped == 1 and order[0] not in pieces
    assert {p for p in pieces if p.startswith("folk")} == set(order[1:3])  # the next in order
    calls.clear()
    assert music.genre_pieces(2) == (pieces, 1)
    assert calls == []  # not retried: the cache says it cannot be read


def test_a_genre_with_no_readable_piece_is_a_user_error(fake_corpus):
    _, bad = fake_corpus
    bad.update(f"folk/{i}" for i in range(4))
    with pytest.raises(UserError, match="no readable folk piece"):
        music.genre_pieces(2)
    assert len(list(music.cache_dir().glob("*.json"))) > 4  # what was parsed stays cached
    with pytest.raises(UserError, match="--max-pieces"):
        music.genre_pieces(0)


def test_the_split_is_by_whole_pieces_and_fixed(fake_corpus):
    d = load_music_genre(4)
    ids = [p for p, _ in d.train + d.val + d.test]
    assert len(ids) == len(set(ids)) == 12 and set(ids) == set(d.notes)
    assert d.classes == ["baroque", "folk", "renaissance"]
    for part in (d.val, d.test):
        assert sorted(label for _, label in part) == d.classes  # one piece a genre
    assert load_music_genre(4).test == d.test
    with pytest.raises(UserError, match="at least 3"):
        load_music_genre(2)


# ---- piano rolls, baseline features, events -----------------------------------------------

def test_the_piano_roll_of_a_hand_built_score():
    upper, lower = stream.Part(), stream.Part()
    tied = [note.Note("D4", quarterLength=0.5), note.Note("D4", quarterLength=0.5)]
    tied[0].tie, tied[1].tie = tie.Tie("start"), tie.Tie("stop")
    for n in [note.Note("C4", quarterLength=0.5), *tied, note.Rest(quarterLength=0.5),
              chord.Chord(["E4", "G4"], quarterLength=1.0)]:
        upper.append(n)
    lower.append(note.Note("C3", quarterLength=1.5))
    lower.append(note.Note("D3", quarterLength=0.25))  # a sixteenth within the second eighth
    notes = music.notes_of(stream.Score([upper, lower]))
    assert notes == [(60, 0.0, 0.5, 0), (48, 0.0, 1.5, 1), (62, 0.5, 1.0, 0),
                     (50, 1.5, 0.25, 1), (64, 2.0, 1.0, 0), (67, 2.0, 1.0, 0)]
    roll = music.piano_roll(notes, step=0.5, low=48, high=67)
    expected = torch.zeros(6, 20)
    for t, pitches in enumerate([(60, 48), (62, 48), (62, 48), (50,), (64, 67), (64, 67)]):
        expected[t, [p - 48 for p in pitches]] = 1
    assert torch.equal(roll, expected)
    assert torch.equal(music.piano_roll(notes, step=0.5, low=48, high=67, max_steps=2),
                       expected[:2])
    assert music.piano_roll(notes).shape == (6, 88)  # the piano's keys by default


def test_the_piano_roll_agrees_with_sampling_the_notes_on_many_random_pieces():
    rng = random.Random(0)
    for _ in range(50):
        notes = [(rng.randint(30, 90), rng.randint(0, 40) * 0.25, rng.randint(1, 8) * 0.25, 0)
                 for _ in range(rng.randint(1, 12))]
        roll = music.piano_roll(notes, step=0.25, max_steps=None)
        sampled = torch.zeros_like(roll)
        for t in range(len(roll)):  # a grid of the notes' own resolution: sample mid-step
            mid = (t + 0.5) * 0.25
            for p, on, d, _ in notes:
                if on <= mid < on + d:
                    sampled[t, p - music.LOW] = 1
        assert torch.equal(roll, sampled)


def test_the_baseline_features_count_pitch_classes_and_voices():
    notes = [(60, 0.0, 2.0, 0), (72, 0.0, 1.0, 1), (67, 1.0, 1.0, 1), (61, 3.0, 1.0, 0)]
    f = music.baseline_features(music.piano_roll(notes, step=1.0), max_voices=3)
    # steps: {C4, C5}, {C4, G4}, {}, {C#4}: note-steps C 3, G 1, C# 1 of 5
    assert f.shape == (16,)
    expected = torch.zeros(16)
    expected[0], expected[7], expected[1] = 3 / 5, 1 / 5, 1 / 5
    expected[12:] = torch.tensor([1, 1, 2, 0]) / 4  # steps with 0, 1, 2, 3+ voices
    assert torch.allclose(f, expected)
    many = music.piano_roll([(60 + k, 0.0, 1.0, k) for k in range(9)], step=1.0)
    assert music.baseline_features(many)[-1] == 1.0  # 9 voices count as "6 or more"


def test_note_events_take_the_top_line_with_rests():
    notes = [(48, 0.0, 4.0, 1), (64, 0.0, 1.0, 0), (60, 0.0, 1.0, 0), (67, 1.0, 0.5, 0),
             (65, 3.0, 1.0, 0)]
    assert music.note_events(notes) == [(64, 1.0), (67, 0.5), (music.REST, 1.5), (65, 1.0)]


def test_midi_written_from_events_reads_back_as_the_same_events(tmp_path):
    rng = random.Random(1)
    for k in range(5):
        events = []
        for i in range(rng.randint(2, 20)):
            rest = 0 < i and rng.random() < 0.2 and events[-1][0] != music.REST
            events.append((music.REST if rest else rng.randint(36, 96),
                           rng.choice([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])))
        if events[-1][0] == music.REST:  # MIDI has no trailing silence
            events.pop()
        path = music.write_midi(events, tmp_path / f"t{k}.mid")
        assert music.note_events(music.read_score(path)) == events
    with pytest.raises(UserError, match="0-127"):
        music.write_midi([(200, 1.0)], tmp_path / "bad.mid")
    assert not (tmp_path / "bad.mid").exists()


# ---- bad scores ---------------------------------------------------------------------------

def test_a_score_music21_cannot_read_is_a_user_error(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<score-partwise><part id='P1'><measure><note><pitch>")
    with pytest.raises(UserError, match="music21 cannot read .*broken.xml"):
        music.read_score(bad)
    binary = tmp_path / "noise.mid"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match="noise.mid"):
        music.read_score(binary)
    with pytest.raises(UserError, match="no such score file"):
        music.read_score(tmp_path / "missing.mxl")


# ---- training on real pieces --------------------------------------------------------------

def test_encoded_rolls_pad_to_time_major_features():
    notes = {"a": [(60, 0.0, 2.0, 0)], "b": [(62, 0.0, 0.5, 0)]}
    enc = Encoded.from_rolls([("a", "x"), ("b", "y")], notes, ["x", "y"], max_steps=3)
    assert [len(r) for r in enc.src] == [3, 1] and enc.truncated == 1
    x, lengths, y = enc.batch([0, 1])
    assert x.shape == (3, 2, 88) and lengths.tolist() == [3, 1] and y.tolist() == [0, 1]
    assert torch.equal(x, pad(enc.src))


def test_a_tiny_music_genre_run_trains_loads_and_predicts(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "classifier", "--dataset", "music-genre", "--max-pieces", "3",
                 "--max-length", "64", "--hidden", "8", "--embed", "8", "--epochs", "2",
                 "--no-progress", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "classifier" and summary["input"] == "piano-roll"
    assert summary["train_examples"] == summary["val_examples"] == 3 == summary["test_examples"]
    for key in ("test_accuracy", "test_macro_f1", "val_baseline_accuracy",
                "test_baseline_macro_f1"):
        assert 0 <= summary[key] <= 1
    assert (out / "confusion.txt").is_file()
    assert len(list(music.cache_dir().glob("*.json"))) >= 9  # the parsed pieces stay cached

    p = rnnkit.load(out)
    d = load_music_genre(3)
    rolls = [music.piano_roll(d.notes[piece]) for piece, _ in d.test]
    together = p.probabilities(rolls)
    alone = torch.cat([p.probabilities([r]) for r in rolls])
    assert torch.allclose(together, alone, atol=1e-5)  # a padded batch = each alone
    assert torch.allclose(together.sum(-1), torch.ones(3))
    # a score file reads as training read it: its roll, the first max_length steps
    piece = d.test[0][0]
    score = music.write_midi(music.note_events(d.notes[piece]), tmp_path / "tune.mid")
    label, prob = p.predict([score])[0]
    assert label in d.classes and 1 / 3 <= prob <= 1
    expected = music.piano_roll(music.read_score(score), max_steps=64)
    assert torch.allclose(p.probabilities([score]), p.probabilities([expected]))
    with pytest.raises(UserError, match="shape"):
        p.predict([torch.zeros(4, 12)])
    bad = tmp_path / "bad.xml"
    bad.write_text("not a score")
    with pytest.raises(UserError, match="music21 cannot read"):
        p.predict([bad])

    # rnnkit predict: each line a score file; a bad one is an empty line, its error, status 2
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{score}\n{bad}\n{score}\n"))
    assert main(["predict", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.out.split("\n")
    assert lines[1] == "" and lines[0] == lines[2] == f"{label}\t{prob:.4f}"
    assert captured.err.count("\n") == 1 and "line 2" in captured.err
    assert "music21 cannot read" in captured.err


def test_the_cli_says_one_line_for_a_bad_selection(capsys, tmp_path):
    vectors = tmp_path / "v.txt"
    vectors.write_text("1 2\nthe 0.1 0.2\n")
    for argv, words in ((["--max-pieces", "0"], "--max-pieces"),
                        (["--max-pieces", "2"], "at least 3"),
                        (["--embeddings", str(vectors)], "drop --embeddings"),
                        (["--val", str(vectors)], "fixed validation"),
                        (["--csv", str(vectors)], "not both")):
        assert main(["train", "classifier", "--dataset", "music-genre", *argv, "--out",
                     str(tmp_path / "r"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / "r").exists()  # nothing written
    assert main(["train", "classifier", "--dataset", "sentiment", "--max-pieces", "5",
                 "--out", str(tmp_path / "r")]) == 2
    assert "goes with --dataset music-genre" in capsys.readouterr().err
