"""Tokenizers: round trips, unknowns, vocabulary caps, and the one-JSON-file save/load."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.corpora import load_corpus
from rnnkit.data.tokenizers import (
    FILENAME,
    UNK,
    UNK_CHAR,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    build_tokenizer,
    count_chars,
)
from rnnkit.errors import UserError

DOCS = load_corpus("python-docs", max_chars=60_000)


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer("bpe", DOCS, vocab_size=400)


# ---- char -------------------------------------------------------------------------------

@given(st.text(min_size=1))
def test_char_round_trip_on_seen_text(text):
    tok = build_tokenizer("char", text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(set(text)) + 1


def test_char_unknown_is_id_zero_and_any_text_encodes():
    tok = build_tokenizer("char", "abc")
    assert tok.vocab == [UNK, "a", "b", "c"]
    assert tok.encode("cxa🙂") == [3, 0, 1, 0]
    assert tok.decode([3, 0, 1]) == f"c{UNK_CHAR}a"


def test_char_vocab_cap_keeps_the_most_frequent():
    tok = build_tokenizer("char", "aaaabbbcc d", vocab_size=3)
    assert tok.vocab == [UNK, "a", "b"]
    assert tok.encode("abcd") == [1, 2, 0, 0]


# ---- word -------------------------------------------------------------------------------

@given(st.text())
def test_word_split_covers_every_character(text):
    assert "".join(WordTokenizer.split(text)) == text


def test_word_tokens_are_words_punctuation_and_whitespace():
    assert WordTokenizer.split("Hello, world!\n  x = f(y)") == [
        "Hello", ",", " world", "!", "\n ", " x", " =", " f", "(", "y", ")"]


def test_word_round_trip_when_all_tokens_known_and_unknowns_otherwise():
    tok = build_tokenizer("word", DOCS)
    assert tok.decode(tok.encode(DOCS)) == DOCS
    ids = tok.encode("the zzyzxqq statement.")
    assert ids[1] == tok.unk_id == 0
    assert tok.decode(ids) == f"the{UNK} statement."


def test_word_vocab_cap_keeps_the_most_frequent():
    text = "a a a b b c"
    tok = build_tokenizer("word", text, vocab_size=3)
    assert tok.vocab == [UNK, " a", " b"]
    assert tok.vocab_size == 3
    assert build_tokenizer("word", DOCS, vocab_size=500).vocab_size == 500


# ---- bpe --------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_bpe_round_trip_is_exact_for_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_learns_merges_that_compress_the_corpus(bpe):
    assert 300 < bpe.vocab_size <= 400
    ids = bpe.encode(DOCS)
    assert len(ids) < 0.6 * len(DOCS.encode("utf-8"))
    assert bpe.decode(ids) == DOCS


def test_bpe_long_text_encodes_as_one_piece_would(bpe):
    long = DOCS * 2  # above the size where encoding runs in parallel pieces
    assert bpe.encode(long) == bpe.hf.encode(long).ids


def test_bpe_needs_one_entry_per_byte():
    with pytest.raises(UserError, match="256"):
        build_tokenizer("bpe", "abc", vocab_size=100)


# ---- save / load ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_round_trip_as_plain_json(tmp_path, kind, bpe):
    tok = bpe if kind == "bpe" else build_tokenizer(kind, DOCS)
    path = tok.save(tmp_path)
    assert path == tmp_path / FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["kind"] == kind
    for where in (tmp_path, path):
        back = Tokenizer.load(where)
        assert type(back) is type(tok) and back == tok
        assert back.encode(DOCS[:3000]) == tok.encode(DOCS[:3000])
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary left behind


@pytest.mark.parametrize("content", [
    b"\x80\x81garbage",
    b"{not json",
    b"[1, 2, 3]",
    b'{"format": "something-else", "kind": "char"}',
    b'{"format": "rnnkit-tokenizer", "kind": "morse", "vocab": []}',
    b'{"format": "rnnkit-tokenizer", "kind": "char", "vocab": ["a", "b"]}',
    b'{"format": "rnnkit-tokenizer", "kind": "char"}',
    b'{"format": "rnnkit-tokenizer", "kind": "bpe", "tokenizer": "{broken"}',
])
def test_corrupt_or_foreign_file_is_a_user_error_naming_it(tmp_path, content):
    path = tmp_path / FILENAME
    path.write_bytes(content)
    with pytest.raises(UserError, match=str(path)):
        Tokenizer.load(tmp_path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no tokenizer file"):
        Tokenizer.load(tmp_path / "nowhere")


def test_build_rejects_an_unknown_kind():
    with pytest.raises(UserError, match="char, word, bpe"):
        build_tokenizer("morse", "abc")


def test_classes_and_count_chars():
    assert isinstance(build_tokenizer("char", "ab"), CharTokenizer)
    assert isinstance(build_tokenizer("word", "ab"), WordTokenizer)
    assert isinstance(build_tokenizer("bpe", "ab", 256), BPETokenizer)
    assert count_chars("héllo🙂") == 6
