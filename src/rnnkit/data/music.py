"""Scores as data: music21's bundled corpus parsed once into note lists, cached on disk, and
turned into piano rolls (deck 000's genre classifier) or note events (generation, MIDI out).

A piece is a list of notes ``(pitch, onset, duration, part)``: the MIDI pitch number, where
the note starts and how long it sounds in quarter lengths (tied notes joined), and the index
of its part (voice). A chord is one note per pitch.

Three genres, from the corpus that ships inside ``music21`` (no download):

* ``renaissance``: Palestrina's masses (``palestrina/*.krn``, 1,318 movements);
* ``baroque``: Bach's chorales (``bach/bwv*.mxl``, 408 harmonisations);
* ``folk``: the Essen, O'Neill (1850) and Ryan (Mammoth) collections of ABC tunes. Their files
  are opuses holding many tunes each; each tune (its ``X:`` number) is one piece.

Parsing costs about 0.1 s (a tune) to 0.5 s (a mass movement) a piece, so each piece is
parsed once: its notes are cached as one small JSON file under ``$RNNKIT_CACHE/music/v1/``
(default ``~/.cache/rnnkit``), written atomically. A damaged entry is parsed again; a piece
music21 cannot read is remembered as such (and skipped, counted). Which pieces a genre uses is
fixed: every piece id sorted, shuffled by a constant seed, the first ``max_pieces`` readable
ones, so every machine picks the same pieces.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError

Note = tuple[int, float, float, int]  # (MIDI pitch, onset, duration, part); quarter lengths
Event = tuple[int, float]  # (MIDI pitch or REST, duration in quarter lengths)

GENRES = ("baroque", "folk", "renaissance")  # sorted: the class ids are their positions
FOLK = ("essenFolksong", "oneills1850", "ryansMammoth")
CACHE_VERSION = 1
SEED = 1234  # the corpus order's own seed: the pieces must not move with a run's --seed
STEP = 0.5  # the piano roll's grid: an eighth note
MAX_STEPS = 256  # 128 quarters: 32 bars of 4/4
LOW, HIGH = 21, 108  # the piano's keys: the roll's columns
REST = -1  # the pitch of a rest event


# ---- the corpus ---------------------------------------------------------------------------

def corpus_root() -> Path:
    """Where music21 keeps its bundled scores."""
    from music21 import common

    return Path(common.getCorpusFilePath())


def corpus_ids(genre: str) -> list[str]:
    """Every piece of ``genre`` as an id: a path inside the corpus, ``#N`` for tune N of an
    ABC file; sorted.

    Example:
        >>> ids = corpus_ids("folk")
        >>> len(ids) > 10_000, ids[0]
        (True, 'essenFolksong/altdeu10.abc#1')
    """
    root = corpus_root()
    if genre == "renaissance":
        files = sorted((root / "palestrina").glob("*.krn"))
    elif genre == "baroque":
        files = sorted((root / "bach").glob("bwv*.mxl"))
    elif genre == "folk":
        return sorted(f"{f.relative_to(root).as_posix()}#{n}" for c in FOLK
                      for f in sorted((root / c).glob("*.abc")) for n in _tune_numbers(f))
    else:
        raise UserError(f"unknown genre {genre!r}; the genres are {', '.join(GENRES)}")
    return [f.relative_to(root).as_posix() for f in files]


def _tune_numbers(path: Path) -> list[int]:
    """The ``X:`` numbers of an ABC file's tunes (each once)."""
    found = re.findall(r"^X:\s*(\d+)", path.read_text(encoding="latin-1"), re.MULTILINE)
    return sorted({int(n) for n in found})


def ordered(ids: list[str], seed: int = SEED) -> list[str]:
    """``ids`` in the fixed order pieces are taken in: sorted, then shuffled by ``seed``."""
    out = sorted(ids)
    random.Random(seed).shuffle(out)
    return out


# ---- parsing ------------------------------------------------------------------------------

def notes_of(score) -> list[Note]:
    """The notes of a music21 stream, sorted by onset, part and pitch; ties joined, rests and
    grace notes (no duration) left out.

    Example:
        >>> from music21 import stream, note, chord
        >>> s = stream.Stream([note.Note("C4", quarterLength=1), note.Rest(),
        ...                    chord.Chord(["E4", "G4"], quarterLength=2)])
        >>> notes_of(s)
        [(60, 0.0, 1.0, 0), (64, 2.0, 2.0, 0), (67, 2.0, 2.0, 0)]
    """
    score = score.stripTies(inPlace=False)
    parts = list(getattr(score, "parts", [])) or [score]
    out = []
    for index, part in enumerate(parts):
        for element in part.flatten().notes:
            duration = float(element.quarterLength)
            if duration <= 0:
                continue
            for pitch in element.pitches:
                out.append((int(pitch.midi), float(element.offset), duration, index))
    return sorted(out, key=lambda n: (n[1], n[3], n[0]))


def parse_piece(piece_id: str) -> list[Note]:
    """Parse one corpus piece (``corpus_ids``' form) with music21 (slow: see the module doc)."""
    from music21 import converter

    path, _, number = piece_id.partition("#")
    score = converter.parse(corpus_root() / path, number=int(number) if number else None)
    if hasattr(score, "scores"):  # an opus: the tune asked for, or the first
        score = score.scores[0]
    return notes_of(score)


def read_score(path: str | Path) -> list[Note]:
    """The notes of the user's score file (any format music21 reads: MusicXML, MIDI, ABC,
    Humdrum ...); a file it cannot read, or one without notes, is a ``UserError``."""
    from music21 import converter

    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise UserError(f"no such score file: {path}; give the path of a MusicXML, MIDI, ABC "
                        "or Humdrum file")
    try:
        score = converter.parse(path)
        if hasattr(score, "scores"):
            score = score.scores[0]
        notes = notes_of(score)
    except Exception as e:  # music21 raises many kinds on a bad file
        raise UserError(f"music21 cannot read {path} as a score ({type(e).__name__}: "
                        f"{str(e)[:120]}); give a MusicXML, MIDI, ABC or Humdrum file") from None
    if not notes:
        raise UserError(f"{path} holds no notes; give a score with notes in it")
    return notes


# ---- the cache ----------------------------------------------------------------------------

def cache_dir() -> Path:
    """``$RNNKIT_CACHE/music/v1`` (default ``~/.cache/rnnkit/music/v1``)."""
    root = os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit"
    return Path(root).expanduser() / "music" / f"v{CACHE_VERSION}"


def _entry(piece_id: str) -> Path:
    return cache_dir() / (re.sub(r"[^A-Za-z0-9._-]", "_", piece_id) + ".json")


def _read_entry(path: Path, piece_id: str) -> tuple[bool, list[Note] | None]:
    """(found, notes): notes None for a piece remembered as unreadable; a missing, damaged or
    foreign entry is not found."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["version"] != CACHE_VERSION or data["id"] != piece_id:
            return False, None
        if data["notes"] is None:
            return True, None
        return True, [(int(p), float(on), float(d), int(part)) for p, on, d, part in data["notes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False, None


def cached_notes(piece_id: str, parse: Callable[[str], list[Note]] | None = None
                 ) -> list[Note] | None:
    """The notes of a corpus piece: from the cache, else parsed (``parse``, default
    ``parse_piece``) and cached. None: music21 cannot read it (remembered, not retried)."""
    path = _entry(piece_id)
    found, notes = _read_entry(path, piece_id)
    if found:
        return notes
    try:
        notes = (parse or parse_piece)(piece_id)
    except Exception:  # an unreadable score is skipped (and counted), not a crash
        notes = None
    from ..train.checkpoint import atomic_write_bytes

    data = {"version": CACHE_VERSION, "id": piece_id,
            "notes": None if notes is None else [list(n) for n in notes]}
    try:
        atomic_write_bytes(path, json.dumps(data, separators=(",", ":")).encode())
    except OSError as e:
        raise UserError(f"cannot write the music cache {path.parent} ({e.strerror}); set "
                        "RNNKIT_CACHE to a writable directory") from None
    return notes


def genre_pieces(max_pieces: int, genres: Iterable[str] = GENRES,
                 progress: Callable[[str], None] | None = None
                 ) -> tuple[dict[str, tuple[str, list[Note]]], int]:
    """The first ``max_pieces`` readable pieces of each genre in the fixed order: ({id:
    (genre, notes)}, how many unreadable pieces were skipped). ``progress`` gets a line now
    and then while pieces are parsed."""
    if max_pieces < 1:
        raise UserError(f"--max-pieces must be at least 1 a genre, got {max_pieces}")
    out: dict[str, tuple[str, list[Note]]] = {}
    skipped = 0
    for genre in genres:
        taken, told = 0, -1
        for piece_id in ordered(corpus_ids(genre)):
            if taken == max_pieces:
                break
            if progress and (told < 0 or taken - told >= 50) and not _entry(piece_id).is_file():
                told = taken  # a line when parsing starts, then every 50 pieces
                progress(f"parsing {genre} pieces with music21 ({taken} of {max_pieces} "
                         f"ready); each is cached in {cache_dir()} for the next run")
            notes = cached_notes(piece_id)
            if not notes:
                skipped += 1
                continue
            out[piece_id] = (genre, notes)
            taken += 1
        if not taken:
            raise UserError(f"no readable {genre} piece in music21's corpus at "
                            f"{corpus_root()}; reinstall music21: pip install --force-reinstall "
                            "music21")
    return out, skipped


# ---- what the models read -----------------------------------------------------------------

def piano_roll(notes: list[Note], step: float = STEP, max_steps: int | None = MAX_STEPS,
               low: int = LOW, high: int = HIGH) -> Tensor:
    """The binary piano roll (T, high - low + 1): row t is the time [t step, (t+1) step),
    column k pitch low + k; 1 where a note sounds at some time in the step. At most
    ``max_steps`` rows (the start of the piece); pitches outside [low, high] are left out.

    Example:
        >>> piano_roll([(60, 0.0, 1.0, 0), (64, 0.5, 0.25, 1)], step=0.5, low=60, high=64)
        tensor([[1., 0., 0., 0., 0.],
                [1., 0., 0., 0., 1.]])
    """
    end = max((on + d for _, on, d, _ in notes), default=0.0)
    T = max(1, math.ceil(end / step - 1e-9))
    T = T if max_steps is None else min(T, max_steps)
    roll = torch.zeros(T, high - low + 1)
    for pitch, on, d, _ in notes:
        a = math.floor(on / step + 1e-9)
        b = max(a + 1, math.ceil((on + d) / step - 1e-9))
        if low <= pitch <= high and a < T:
            roll[a:min(b, T), pitch - low] = 1.0
    return roll


def baseline_features(roll: Tensor, low: int = LOW, max_voices: int = 6) -> Tensor:
    """What counting alone sees of a piano roll: its pitch-class histogram (12 shares of the
    sounding note-steps, C first) and polyphony counts (the shares of steps with 0, 1, ...,
    ``max_voices`` or more notes sounding).

    Example:
        >>> roll = torch.tensor([[1., 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])  # C, E
        >>> f = baseline_features(roll, low=60, max_voices=2)
        >>> (f * 3).round().tolist()          # C once, E twice; steps of 2, 1 and 0 notes
        [1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    """
    per_pitch = roll.sum(0)
    classes = torch.zeros(12).index_add_(0, (torch.arange(roll.shape[1]) + low) % 12, per_pitch)
    classes = classes / classes.sum().clamp(min=1)
    voices = roll.sum(1).long().clamp(max=max_voices)
    polyphony = torch.bincount(voices, minlength=max_voices + 1).float() / len(roll)
    return torch.cat([classes, polyphony])


def note_events(notes: list[Note], grid: float = 0.25) -> list[Event]:
    """The piece as a melody of (pitch, duration) events, for generation: the highest note
    starting at each onset (the skyline), sounding until the next onset or its own end (then a
    rest, pitch ``REST``); durations rounded to ``grid`` (at least one grid step).

    Example:
        >>> note_events([(60, 0, 1, 0), (48, 0, 2, 1), (62, 1, 0.5, 0), (64, 2, 1, 0)])
        [(60, 1.0), (62, 0.5), (-1, 0.5), (64, 1.0)]
    """
    top: dict[float, Note] = {}
    for n in notes:
        if n[1] not in top or n[0] > top[n[1]][0]:
            top[n[1]] = n
    onsets = sorted(top)
    out: list[Event] = []
    for i, on in enumerate(onsets):
        pitch, _, d, _ = top[on]
        gap = (onsets[i + 1] - on) if i + 1 < len(onsets) else d
        out.append((pitch, _snap(min(d, gap), grid)))
        if gap - d >= grid / 2:
            out.append((REST, _snap(gap - d, grid)))
    return out


def event_word(event: Event) -> str:
    """One event as a word of the generator's vocabulary: ``PITCH:QUARTERS``, a rest
    ``r:QUARTERS``.

    Example:
        >>> event_word((60, 1.0)), event_word((REST, 0.25)), parse_event("r:0.25")
        ('60:1', 'r:0.25', (-1, 0.25))
    """
    pitch, duration = event
    return f"{'r' if pitch == REST else pitch}:{duration:g}"


def parse_event(word: str) -> Event:
    """``event_word``'s inverse; a word that is not one is a ``UserError``."""
    pitch, _, duration = word.partition(":")
    try:
        event = (REST if pitch == "r" else int(pitch), float(duration))
    except ValueError:
        raise UserError(f"{word!r} is not a note event (PITCH:QUARTERS or r:QUARTERS)") from None
    if not event[1] > 0:
        raise UserError(f"{word!r} is not a note event: its duration must be above 0")
    return event


def events_text(notes: list[Note]) -> str:
    """A piece's melody (``note_events``) as one line of event words: what the generator
    reads."""
    return " ".join(event_word(e) for e in note_events(notes))


def _snap(duration: float, grid: float) -> float:
    return max(grid, round(duration / grid) * grid)


def events_stream(events: list[Event]):
    """The events as a one-part music21 stream (a note per pitch, a rest per ``REST``)."""
    from music21 import note, stream

    part = stream.Part()
    for pitch, duration in events:
        part.append(note.Rest(quarterLength=duration) if pitch == REST
                    else note.Note(pitch, quarterLength=duration))
    return part


def write_midi(events: list[Event], path: str | Path) -> Path:
    """Write (pitch, duration) events as a MIDI file via music21 (atomically: a temporary file
    renamed over ``path``); returns the path.

    Example:
        >>> import tempfile, pathlib
        >>> f = write_midi([(60, 1.0), (REST, 0.5), (67, 0.5)],
        ...                pathlib.Path(tempfile.mkdtemp()) / "tune.mid")
        >>> note_events(read_score(f))
        [(60, 1.0), (-1, 0.5), (67, 0.5)]
    """
    path = Path(path)
    if not events:
        raise UserError(f"no notes to write to {path}")
    for pitch, duration in events:
        if not (pitch == REST or 0 <= pitch <= 127) or not duration > 0:
            raise UserError(f"cannot write the event ({pitch}, {duration}) to MIDI: a pitch is "
                            "0-127 (or REST) and a duration above 0")
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        events_stream(events).write("midi", fp=str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
