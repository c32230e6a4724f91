"""The report (`rnnkit report RUN_DIR`) and attention maps: the page is self-contained, holds
every section, and works in a real browser (headless Chromium: no script error, the unit
picker redraws the heatmap, a screenshot); attention maps of a seq2seq run."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rnnkit.analysis.attention import run_attention
from rnnkit.analysis.report import SECTIONS, _figure_png, write_report
from rnnkit.analysis.runs import pyplot
from rnnkit.cli.main import main
from rnnkit.data.tokenizers import CharTokenizer
from rnnkit.train.seq2seq import run_seq2seq
from rnnkit.translation import load_translator
from test_analysis import _code_text, _lm_run, string_tracking_lm

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A language-model run around the string-tracking LSTM, with logs as training writes."""
    text = _code_text(400, seed=5)
    tok = CharTokenizer.train(text)
    run = _lm_run(tmp_path_factory.mktemp("report") / "run", text, string_tracking_lm(tok), tok)
    rows = [{"step": s, "loss": 3.0 / s} for s in range(1, 11)] + [{"step": 10, "val_loss": 0.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "samples.txt").write_text('--- step 10 ---\nx = "a <b>" + y\n')
    (run / "summary.json").write_text(json.dumps({"task": "lm", "status": "completed",
                                                  "val_bpc": 1.25}))
    return run


def test_the_report_is_one_self_contained_page_with_every_section(lm_run, capsys):
    assert main(["report", str(lm_run)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == lm_run / "report.html"
    page = path.read_text(encoding="utf-8")
    for name in SECTIONS:
        assert f"<section id='{name}'>" in page
    # nothing is fetched: every picture inline, no address outside the page
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)
    assert page.count("src='data:image/png;base64,") == 3  # losses, gradients, spectra
    assert "val_bpc" in page and "1.25" in page
    assert "x = &quot;a &lt;b&gt;&quot; + y" in page  # the sample, escaped
    assert "not a seq2seq" not in page and "encoder-decoder runs" in page  # attention: why not
    # the analyses it needed were computed and kept
    for name in ("gradients", "spectra", "units"):
        assert (lm_run / "analysis" / f"{name}.json").is_file()
    units = json.loads((lm_run / "analysis" / "units.json").read_text())
    data = re.search(r"<script id='unit-data' type='application/json'>(.*?)</script>", page,
                     re.S).group(1)
    assert json.loads(data) == units["excerpt"]
    names = [u["name"] for u in units["excerpt"]["units"]]
    assert {"layer 0 unit 0 cell", "layer 0 unit 0 hidden"} & set(names)  # inside_string's


def test_the_report_refuses_a_directory_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an rnnkit run directory" in err[0]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_report_works_in_headless_chromium(lm_run, tmp_path):
    page = write_report(lm_run)
    # the page's own self-test (#selftest) moves the picker and records whether it redrew
    dom = _chromium("--dump-dom", f"{page.resolve().as_uri()}#selftest")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    errors = re.search(r'<html[^>]*data-errors="([^"]*)"', html)
    assert errors is None, errors.group(1)  # the page's trap records any script error there
    assert 'data-ready="yes"' in html  # the last script ran
    for name in SECTIONS:
        assert f'<section id="{name}">' in html
    assert '<div id="selftest" hidden="">picker-changed</div>' in html
    excerpt = json.loads((lm_run / "analysis" / "units.json").read_text())["excerpt"]
    heat = re.search(r'<pre id="unit-heatmap" data-unit="([^"]+)">(.*?)</pre>', html, re.S)
    assert heat.group(1) == excerpt["units"][1]["name"]  # the self-test picked the second
    assert heat.group(2).count("<span") == len(excerpt["text"])
    shot = tmp_path / "report.png"
    done = _chromium("--window-size=1280,4000", f"--screenshot={shot}", page.resolve().as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def _pairs(path: Path, n: int = 80) -> Path:
    g = torch.Generator().manual_seed(0)
    words = ["".join("abcd"[int(i)] for i in torch.randint(4, (3,), generator=g))
             for _ in range(n)]
    path.write_text("".join(f"{w}\t{w[::-1]}\n" for w in words), encoding="utf-8")
    return path


def test_attention_maps_of_a_seq2seq_run_and_its_report(tmp_path, capsys):
    run = tmp_path / "s2s"
    run_seq2seq({"tsv": str(_pairs(tmp_path / "pairs.tsv")), "hidden": 12, "embed": 6,
                 "batch_size": 8, "steps": 6, "warmup": 2, "progress": False,
                 "attention": "bahdanau", "out": str(run)})
    result = run_attention(run, sources=["abc", "dcba"])
    translator = load_translator(run)
    for source, example in zip(["abc", "dcba"], result["examples"]):
        want = translator.translate(source)
        assert example["output"] == want.text
        weights = torch.tensor(example["weights"])
        torch.testing.assert_close(weights, want.attention.float(), rtol=1e-6, atol=1e-7)
        assert weights.shape[1] == len(source)  # a column per source character
        torch.testing.assert_close(weights.sum(1), torch.ones(len(weights)))  # a distribution
    assert (run / "analysis" / "attention.png").stat().st_size > 1000
    assert main(["analyze", "attention", str(run), "abc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = translator.translate("abc")
    assert lines[0] == f"abc -> {want.text}"
    assert len(lines) == 1 + len(want.output_tokens)  # a heatmap row per output token
    width = max(len(t) for t in want.output_tokens)
    assert all(len(line) == 2 + width + 1 + 3 for line in lines[1:])  # a column per source char
    default = run_attention(run)  # the run's first validation sources
    assert 1 <= len(default["examples"]) <= 4
    page = write_report(run).read_text()
    assert "attention maps" in page and "alt='attention maps'" in page
    # gradient flow, spectra and unit probes cannot read an encoder-decoder: not tried
    for name in ("gradients", "spectra", "units"):
        assert "does not apply to this seq2seq run" in _section_of(page, name)
    assert "not computed" not in page


def _section_of(page: str, name: str) -> str:
    start = page.index(f"<section id='{name}'>")
    return page[start:page.index("</section>", start)]


def _fake_run(path: Path, task: str) -> Path:
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": task}))
    return path


def test_sections_that_cannot_apply_say_so_and_real_failures_say_not_computed(tmp_path,
                                                                              capsys):
    page = write_report(_fake_run(tmp_path / "w2v", "word2vec")).read_text(encoding="utf-8")
    for name in ("gradients", "spectra", "units", "attention"):
        assert "does not apply to this word2vec run" in _section_of(page, name), name
    assert "not computed" not in page
    units = _section_of(page, "units")
    assert "character language model (rnnkit train lm)" in units and "synthetic" not in units
    # a language-model run without checkpoints: the analyses apply, were tried, and failed
    page = write_report(_fake_run(tmp_path / "lm", "lm")).read_text(encoding="utf-8")
    for name in ("gradients", "spectra", "units"):
        assert "not computed: " in _section_of(page, name), name
    assert "does not apply to this seq2seq run" not in page
    assert "does not apply to this lm run" in _section_of(page, "attention")
    # a synthetic run has gradient flow and spectra, but no units to probe
    page = write_report(_fake_run(tmp_path / "syn", "synthetic")).read_text(encoding="utf-8")
    assert "does not apply" not in _section_of(page, "gradients")
    assert "does not apply to this synthetic run" in _section_of(page, "units")
    # rnnkit analyze units names the runs it reads, as the report does
    assert main(["analyze", "units", str(tmp_path / "w2v")]) == 2
    err = capsys.readouterr().err
    assert "give a run of rnnkit train lm" in err and "synthetic" not in err


def test_the_report_shows_the_pictures_of_a_runs_predictions(tmp_path, capsys):
    """A classifier's confusion matrix and a forecaster's forecast plot go into the samples
    section, inline; a run with neither and no samples says so."""
    run = tmp_path / "cls"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "classifier"}))
    (run / "summary.json").write_text(json.dumps({"task": "classifier", "status": "completed"}))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[3, 1], [0, 4]])
    png = _figure_png(fig)
    (run / "confusion.png").write_bytes(png)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    samples = page[page.index("<section id='samples'>"):page.index("<section id='gradients'>")]
    assert "confusion matrix of the test split" in samples
    assert base64.b64encode(png).decode() in samples
    (run / "confusion.png").unlink()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "no samples (samples.txt) and no pictures of its predictions" in page
    capsys.readouterr()
