"""The report (``rnnkit report RUN_DIR``): one self-contained HTML page for a run.

Every picture is inlined (PNG as a data: URI), every number is in the page, and the only
script is the page's own: it opens from disk in a browser with no server and no network.
Sections, each always present: the run (config and summary), loss curves, samples, gradient
flow, spectra, unit probes (the text coloured by a unit chosen in a picker) and attention maps.
An analysis whose result is not yet under ``RUN/analysis/`` is computed first
(``refresh=True``: always). One that cannot apply to the run's task (``APPLIES``: gradient
flow of a word2vec run, say) reads "does not apply to this word2vec run" and is not tried; "not
computed: why" is kept for an analysis that was tried and failed.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..train.checkpoint import atomic_write_bytes, read_task
from ..train.plots import loss_figure
from ..train.rundir import RunDir
from .runs import TASKS, analysis_dir, pyplot

SECTIONS = ("run", "losses", "samples", "gradients", "spectra", "units", "attention")
SAMPLE_CHARS = 3000
# the analyses' sections: the tasks each can read (what the analysis code accepts), and why
APPLIES: dict[str, tuple[tuple[str, ...], str]] = {
    "gradients": (TASKS, "gradient flow unrolls the recurrent network of a language model or "
                  "a synthetic task (rnnkit train lm or synthetic)"),
    "spectra": (TASKS, "spectra read the recurrent matrices of a language model or a synthetic "
                "task (rnnkit train lm or synthetic)"),
    "units": (("lm",), "unit probes read text through a character language model (rnnkit "
              "train lm)"),
    "attention": (("seq2seq",), "attention maps are for encoder-decoder runs (rnnkit train "
                  "seq2seq)"),
}

# before anything else runs: any script error is recorded on <html data-errors>, where a
# test (or a person with the inspector) finds it
ERROR_TRAP = """<script>
window.addEventListener("error", function (e) {
  var root = document.documentElement;
  root.setAttribute("data-errors", (root.getAttribute("data-errors") || "") + e.message + ";");
});
</script>"""

PICKER_SCRIPT = """<script>
(function () {
  var data = JSON.parse(document.getElementById("unit-data").textContent);
  var pick = document.getElementById("unit-picker");
  var out = document.getElementById("unit-heatmap");
  function colour(v) {  // red for high, blue for low, as deck 003's pictures
    var a = Math.abs(v).toFixed(2);
    return v > 0 ? "rgba(220,40,40," + a + ")" : "rgba(40,90,220," + a + ")";
  }
  function draw() {
    var unit = data.units[pick.value];
    var scale = Math.max.apply(null, unit.values.map(Math.abs)) || 1;
    out.replaceChildren();
    for (var i = 0; i < data.text.length; i++) {
      var span = document.createElement("span");
      var ch = data.text[i];
      span.textContent = ch === "\\n" ? "\\u21b5\\n" : ch;
      span.style.background = colour(unit.values[i] / scale);
      out.appendChild(span);
    }
    out.setAttribute("data-unit", unit.name);
  }
  pick.addEventListener("change", draw);
  draw();
  if (location.hash === "#selftest") {  // the browser test: the picker must redraw
    var before = out.innerHTML;
    pick.selectedIndex = (pick.selectedIndex + 1) % pick.options.length;
    pick.dispatchEvent(new Event("change"));
    document.getElementById("selftest").textContent =
      out.innerHTML !== before ? "picker-changed" : "picker-unchanged";
  }
})();
</script>"""

STYLE = """<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 90%; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
pre { font-family: monospace; white-space: pre-wrap; background: #f7f7f7; padding: 0.5em; }
img { max-width: 100%; }
.na { color: #777; font-style: italic; }
</style>"""


def write_report(run_dir: str | Path, which: str = "best", refresh: bool = False) -> Path:
    """Write ``RUN/report.html`` (atomically) and return its path.

    Example:
        >>> write_report("runs/lm")                       # doctest: +SKIP
        PosixPath('runs/lm/report.html')
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not an rnnkit run directory (no config.json); pass "
                        "the --out directory of a training run")
    task = read_task(run_dir)
    body = [_section(name, _does_not_apply(name, task)
                     or _SECTION_FUNCS[name](run_dir, task, which, refresh))
            for name in SECTIONS]
    title = f"rnnkit report: {run_dir.resolve().name}"
    page = "\n".join([
        "<!doctype html>", "<html lang='en'>", "<head>", "<meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>", ERROR_TRAP, STYLE, "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>", _contents(), *body,
        "<script>document.body.setAttribute('data-ready', 'yes');</script>", "</body>",
        "</html>"])
    path = run_dir / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


# ---- sections -----------------------------------------------------------------------------

def _section(name: str, content: str) -> str:
    return f"<section id='{name}'>\n<h2>{name.capitalize()}</h2>\n{content}\n</section>"


def _contents() -> str:
    links = " · ".join(f"<a href='#{n}'>{n}</a>" for n in SECTIONS)
    return f"<nav>{links}</nav>"


def _not_applicable(why: str) -> str:
    return f"<p class='na'>{html.escape(why)}</p>"


def _does_not_apply(name: str, task: str | None) -> str | None:
    """The section's text when its analysis cannot read a run of ``task`` (None: it can, or
    the task is unknown and the analysis itself will say what is wrong)."""
    tasks, why = APPLIES.get(name, ((), ""))
    if task is None or not why or task in tasks:
        return None
    return _not_applicable(f"does not apply to this {task} run: {why}")


def _run_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    config = _read_json(run_dir / "config.json") or {}
    summary = _read_json(run_dir / "summary.json")
    parts = [f"<p>task: <b>{html.escape(str(task))}</b>; directory: "
             f"<code>{html.escape(str(run_dir.resolve()))}</code></p>"]
    if summary:
        parts += ["<h3>Summary</h3>", _table(summary)]
    else:
        parts.append(_not_applicable("no summary.json: the run has not finished"))
    parts += ["<h3>Config</h3>", _table({k: v for k, v in config.items() if k != "model"})]
    if isinstance(config.get("model"), dict):
        parts += ["<h3>Model</h3>", _table(config["model"])]
    return "\n".join(parts)


def _losses_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    fig = loss_figure(RunDir(run_dir, write=False).metrics(), (8, 4))
    if fig is None:
        return _not_applicable("no losses logged (metrics.jsonl is missing or empty)")
    return _img(_figure_png(fig), "loss curves")


# the pictures of its predictions a task writes into its run directory
PREDICTIONS = (("confusion.png", "the confusion matrix of the test split"),
               ("forecast.png", "history, forecasts and intervals"))


def _samples_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    """The samples a run wrote while training, and the pictures of its predictions."""
    parts = []
    path = run_dir / "samples.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(f"<p>the last samples written during training:</p><pre>"
                     f"{html.escape(text[-SAMPLE_CHARS:])}</pre>")
    for name, what in PREDICTIONS:
        if (run_dir / name).is_file():
            parts += [f"<p>{what} ({name}):</p>", _image_file(run_dir / name, what)]
    return "\n".join(parts) or _not_applicable(
        "this run wrote no samples (samples.txt) and no pictures of its predictions")


def _gradients_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    from .gradients import run_gradients

    result, why = _analysis(run_dir, "gradients", refresh, lambda: run_gradients(run_dir, which))
    if result is None:
        return _not_applicable(why)
    span = result["falloff_steps"]
    rows = [{"when": name, "layer": k, "forget-gate bias": result[name]["forget_bias"],
             "|dL/dh| at T": result[name]["norms"][k][0],
             f"{span} steps back": result[name]["norms"][k][span],
             f"fall over {span} steps": result[name]["falloff"][k]}
            for name in ("init", "trained") for k in range(len(result[name]["norms"]))]
    compared = analysis_dir(run_dir) / "gradients_compare.png"  # rnnkit analyze ... --compare
    also = "<p>beside the runs it was compared with:</p>" + _image_file(
        compared, "gradient flow compared") if compared.is_file() else ""
    return _image_file(analysis_dir(run_dir) / "gradients.png", "gradient flow") + \
        _rows_table(rows) + also


def _spectra_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    from .spectra import run_spectra

    result, why = _analysis(run_dir, "spectra", refresh, lambda: run_spectra(run_dir, which))
    if result is None:
        return _not_applicable(why)
    rows = [{"checkpoint": c["checkpoint"], "step": c["step"], "layer": k, "gate": gate,
             "spectral radius": s["spectral_radius"], "largest singular value":
             s["max_singular_value"]}
            for c in result["checkpoints"] for k, blocks in enumerate(c["layers"])
            for gate, s in blocks.items()]
    return _image_file(analysis_dir(run_dir) / "spectra.png", "spectra") + _rows_table(rows)


def _units_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    from .probes import run_units

    result, why = _analysis(run_dir, "units", refresh, lambda: run_units(run_dir, which=which))
    if result is None:
        return _not_applicable(why)
    rows = [{"feature": p["feature"], "best unit": "-" if p["layer"] is None else
             f"layer {p['layer']} unit {p['index']} {p['state']}",
             "correlation": p["correlation"]} for p in result["features"]]
    excerpt = result.get("excerpt") or {"text": "", "units": []}
    if not excerpt["units"]:
        return _rows_table(rows) + _not_applicable("no unit follows any feature of this text")
    best_for = {}
    for p in result["features"]:
        for t in p["top"]:
            best_for.setdefault(f"layer {t['layer']} unit {t['index']} {t['state']}",
                                f"{p['feature']} (r = {t['correlation']:+.2f})")
    options = "".join(f"<option value='{i}'>{html.escape(u['name'])}: "
                      f"{html.escape(best_for.get(u['name'], ''))}</option>"
                      for i, u in enumerate(excerpt["units"]))
    data = json.dumps(excerpt).replace("</", "<\\/")  # nothing in it may close the script
    return "\n".join([
        _rows_table(rows),
        f"<p>text: {html.escape(str(result['text']))} ({result['chars']:,} characters); "
        "colour: the chosen unit's value after each character (red high, blue low)</p>",
        f"<label>unit <select id='unit-picker'>{options}</select></label>",
        "<pre id='unit-heatmap'></pre>", "<div id='selftest' hidden></div>",
        f"<script id='unit-data' type='application/json'>{data}</script>", PICKER_SCRIPT])


def _attention_section(run_dir: Path, task: str | None, which: str, refresh: bool) -> str:
    from .attention import run_attention

    result, why = _analysis(run_dir, "attention", refresh, lambda: run_attention(run_dir, which))
    if result is None:
        return _not_applicable(why)
    if not result["examples"]:
        return _not_applicable("this model decodes without attention (--attention none)")
    rows = [{"source": e["source"], "output": e["output"]} for e in result["examples"]]
    return _image_file(analysis_dir(run_dir) / "attention.png", "attention maps") + \
        _rows_table(rows)


_SECTION_FUNCS: dict[str, Callable[[Path, str | None, str, bool], str]] = {
    "run": _run_section, "losses": _losses_section, "samples": _samples_section,
    "gradients": _gradients_section, "spectra": _spectra_section, "units": _units_section,
    "attention": _attention_section}


# ---- helpers ------------------------------------------------------------------------------

def _analysis(run_dir: Path, name: str, refresh: bool,
              compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """An analysis's result: read from ``analysis/NAME.json``, or computed; a run it does not
    apply to gives (None, the reason)."""
    saved = None if refresh else _read_json(analysis_dir(run_dir) / f"{name}.json")
    if saved is not None:
        return saved, ""
    try:
        return compute(), ""
    except UserError as e:
        return None, f"not computed: {e}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _table(obj: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_shown(v))}</td></tr>"
                   for k, v in obj.items())
    return f"<table>{rows}</table>"


def _rows_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_shown(v))}</td>" for v in r.values())
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shown(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "-"
    return v if isinstance(v, str) else json.dumps(v)


def _figure_png(fig: Any) -> bytes:
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64," \
           f"{base64.b64encode(png).decode()}'>"


def _image_file(path: Path, alt: str) -> str:
    if not path.is_file():
        return _not_applicable(f"{path.name} is missing: rerun with --refresh")
    return _img(path.read_bytes(), alt)
