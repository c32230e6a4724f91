"""Built-in corpora, the user's text (file, directory, glob), its errors, and the splits."""

import sysconfig
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.data.corpora import (
    DATASETS,
    load_corpus,
    python_source_files,
    split_corpus,
)
from rnnkit.errors import UserError

# ---- built-in corpora -------------------------------------------------------------------

def test_python_docs_is_the_help_topics_in_sorted_order():
    from pydoc_data.topics import topics

    text = load_corpus("python-docs")
    assert text == load_corpus("python-docs")
    assert len(text) > 400_000
    first, last = sorted(topics)[0], sorted(topics)[-1]
    assert text.startswith(topics[first].strip("\n"))
    assert text.rstrip("\n").endswith(topics[last].strip("\n"))


def test_python_source_is_the_stdlib_without_tests_or_site_packages():
    files = python_source_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    rel = [f.relative_to(root).as_posix() for f in files]
    assert rel == sorted(rel) and len(rel) > 300
    assert "os.py" in rel and "json/decoder.py" in rel
    banned = {"test", "tests", "site-packages", "pydoc_data", "idle_test"}
    assert not any(banned & set(r.split("/")) for r in rel)


def test_python_source_max_chars_reads_a_deterministic_prefix():
    small = load_corpus("python-source", max_chars=200_000)
    big = load_corpus("python-source", max_chars=500_000)
    assert 100_000 <= len(small) <= 200_000 and big.startswith(small)
    assert small.endswith("\n")
    assert small.startswith(python_source_files()[0].read_text(encoding="utf-8"))


def test_hello_and_max_chars():
    assert load_corpus("hello") == "hello" * 200
    assert load_corpus("hello", max_chars=7) == "hellohe"


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        load_corpus("shakespeare")
    for name in DATASETS:
        assert name in str(e.value)


def test_dataset_and_text_together_is_an_error(tmp_path):
    with pytest.raises(UserError, match="not both"):
        load_corpus("hello", text=tmp_path)


# ---- the user's text --------------------------------------------------------------------

def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_text_file_is_read_as_utf8_without_bom(tmp_path):
    f = write(tmp_path / "a.txt", "\ufeffhéllo wörld 🙂\n".encode())
    assert load_corpus(text=f) == "héllo wörld 🙂\n"
    assert load_corpus(text=str(f), max_chars=5) == "héllo"


def test_directory_reads_text_files_recursively_sorted_skipping_binary_and_hidden(tmp_path):
    write(tmp_path / "b.txt", b"second")
    write(tmp_path / "a" / "z.txt", b"first\n")
    write(tmp_path / "c.bin", b"\x00\x01\x02")
    write(tmp_path / "d.txt", b"caf\xe9")  # latin-1, skipped inside a directory
    write(tmp_path / ".git" / "x.txt", b"hidden")
    assert load_corpus(text=tmp_path) == "first\nsecond\n"


def test_glob_reads_the_matching_files(tmp_path):
    write(tmp_path / "a1.md", b"one\n")
    write(tmp_path / "sub" / "x2.md", b"two\n")
    write(tmp_path / "a3.txt", b"three\n")
    assert load_corpus(text=f"{tmp_path}/**/*.md") == "one\ntwo\n"  # sorted by path
    assert load_corpus(text=f"{tmp_path}/a*") == "one\nthree\n"


@pytest.mark.parametrize("data, match", [
    (b"", "is empty"),
    (b"  \n\t\n", "only whitespace"),
    (b"abc\x00def", "binary .*offset 3"),
    (b"caf\xe9 au lait", "not UTF-8 .*0xe9 at offset 3"),
])
def test_bad_file_says_which_and_why(tmp_path, data, match):
    f = write(tmp_path / "bad.txt", data)
    with pytest.raises(UserError, match=match) as e:
        load_corpus(text=f)
    assert str(f) in str(e.value)


def test_missing_path_empty_directory_and_empty_glob(tmp_path):
    with pytest.raises(UserError, match="no such file or directory"):
        load_corpus(text=tmp_path / "missing.txt")
    write(tmp_path / "d" / "bin", b"\x00")
    with pytest.raises(UserError, match="holds no UTF-8 text files .*binary 1"):
        load_corpus(text=tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(UserError, match="no UTF-8 text"):
        load_corpus(text=tmp_path / "e")
    with pytest.raises(UserError, match="matches no files"):
        load_corpus(text=f"{tmp_path}/*.nothing")


def _reading(spec, **kw):
    """The text load_corpus reads and the report lines it gives."""
    lines = []
    text = load_corpus(text=spec, report=lines.append, **kw)
    return text, lines


def test_directory_report_counts_and_names_what_was_read_and_skipped(tmp_path):
    write(tmp_path / "a.txt", b"alpha\n")
    write(tmp_path / "sub" / "b.md", b"beta\n")
    write(tmp_path / "sub" / "c.py", b"gamma = 1\n")
    for i in range(5):
        write(tmp_path / "lib" / f"x{i}.so", b"\x7fELF\x00\x01")
    write(tmp_path / "d.txt", "café\n".encode("latin-1"))
    write(tmp_path / "e.txt", b"")
    write(tmp_path / "venv" / "pyvenv.cfg", b"home = /usr/bin\n")  # a virtual environment
    write(tmp_path / "venv" / "lib" / "site.py", b"import os\n")
    write(tmp_path / "sub" / "__pycache__" / "c.txt", b"cached\n")
    write(tmp_path / "node_modules" / "pkg" / "index.js", b"x = 1\n")
    write(tmp_path / ".git" / "HEAD", b"ref: refs/heads/main\n")
    text, lines = _reading(tmp_path)
    assert text == "alpha\nbeta\ngamma = 1\n"
    assert lines == [
        f"--text {tmp_path}: read 3 files (21 characters: .txt 1, .md 1, .py 1); "
        "skipped 7: binary 5 (e.g. lib/x0.so, lib/x1.so, lib/x2.so, ...), not UTF-8 1 "
        "(e.g. d.txt), empty 1 (e.g. e.txt); left out 3 directories: node_modules 1 "
        "(e.g. node_modules), virtual environment 1 (e.g. venv), __pycache__ 1 "
        "(e.g. sub/__pycache__)"]


def test_report_groups_rare_suffixes_and_says_what_max_chars_left_unread(tmp_path):
    for name in ("a.md", "b.md", "c.py", "d.rst", "e.toml", "f"):
        write(tmp_path / name, b"0123456789\n")
    _, lines = _reading(tmp_path)
    assert "read 6 files (66 characters: .md 2, .py 1, .rst 1, other 2)" in lines[0]
    text, lines = _reading(tmp_path, max_chars=15)
    assert text == "0123456789\n"
    assert lines[0].endswith("read 2 files (11 characters: .md 2); 4 more not read "
                             "(max_chars 15 reached)")


def test_glob_is_recursive_relative_and_leaves_out_a_venv_it_does_not_name(tmp_path,
                                                                            monkeypatch):
    write(tmp_path / "src" / "a.py", b"a = 1\n")
    write(tmp_path / "src" / "pkg" / "deep" / "er" / "b.py", b"b = 2\n")
    write(tmp_path / "src" / "pkg" / "notes.txt", b"not python\n")
    write(tmp_path / "src" / "env" / "pyvenv.cfg", b"home = /usr/bin\n")
    write(tmp_path / "src" / "env" / "lib" / "site-packages" / "m.py", b"m = 3\n")
    monkeypatch.chdir(tmp_path)
    text, lines = _reading("src/**/*.py")
    assert text == "a = 1\nb = 2\n"
    assert lines == ["--text src/**/*.py: read 2 files (12 characters: .py 2); left out 1 "
                     "directory: virtual environment 1 (e.g. env)"]
    assert _reading("src/env/**/*.py")[0] == "m = 3\n"  # the venv itself: asked for
    assert _reading("src/*/lib/site-packages/*.py")[0] == "m = 3\n"  # named in the pattern


def test_no_report_for_one_file_or_a_builtin_corpus(tmp_path):
    f = write(tmp_path / "a.txt", b"alpha\n")
    assert _reading(f) == ("alpha\n", [])
    lines = []
    load_corpus("hello", report=lines.append)
    assert lines == []


def test_a_directory_that_is_a_venv_is_read_whole(tmp_path):
    write(tmp_path / "pyvenv.cfg", b"home = /usr/bin\n")
    write(tmp_path / "lib" / "site-packages" / "m.py", b"m = 3\n")
    assert _reading(tmp_path / "lib")[0] == "m = 3\n"


def test_a_directory_of_only_skipped_files_says_what_it_skipped(tmp_path):
    write(tmp_path / "x.bin", b"\x00")
    write(tmp_path / ".venv" / "pyvenv.cfg", b"home = /usr/bin\n")
    write(tmp_path / "venv" / "pyvenv.cfg", b"home = /usr/bin\n")
    with pytest.raises(UserError, match=r"holds no UTF-8 text files \(skipped 1: binary 1 "
                       r"\(e.g. x.bin\); left out 1 directory: virtual environment 1 "
                       r"\(e.g. venv\)\); point --text at text files"):
        load_corpus(text=tmp_path)


# ---- splits -----------------------------------------------------------------------------

lines = st.lists(st.text(alphabet="abc \t", max_size=30), min_size=0, max_size=200)


@given(lines, st.sampled_from([0.0, 0.05, 0.1, 0.3]), st.sampled_from([0.0, 0.05, 0.2]))
def test_split_is_contiguous_deterministic_and_cut_at_lines(ls, vf, tf):
    text = "\n".join(ls) + "\nend"
    if len(text) < 20:
        text = text * 20
    train, val, test = split_corpus(text, vf, tf)
    assert train + val + test == text
    assert (train, val, test) == split_corpus(text, vf, tf)
    assert len(train) >= 2
    slack = max(1, len(text) // 50)
    for part, frac in ((val, vf), (test, tf)):
        assert (len(part) == 0) == (frac == 0)
        if frac:
            assert abs(len(part) - frac * len(text)) <= 2 * slack + 1
    for start, frac in ((len(train), vf), (len(train) + len(val), tf)):
        near = text[max(0, start - slack - 1):start + slack]
        if frac and "\n" in near[1:-1]:
            assert text[start - 1] == "\n"  # the part begins on a new line


def test_split_without_newlines_uses_the_exact_fractions():
    train, val, test = split_corpus("hello" * 200)
    assert (len(train), len(val), len(test)) == (900, 50, 50)


def test_split_of_a_tiny_text_is_a_user_error():
    with pytest.raises(UserError, match="3 characters"):
        split_corpus("abc")
    with pytest.raises(ValueError):
        split_corpus("a" * 100, 0.6, 0.5)
