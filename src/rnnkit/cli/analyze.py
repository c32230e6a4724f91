"""`rnnkit analyze gradients|spectra|units RUN_DIR`: look inside a trained recurrent model.

Each analysis writes its JSON and PNG under ``RUN_DIR/analysis/`` and prints a short table
(``--json``: one JSON object, the file's content)."""

from __future__ import annotations

import argparse
import sys

from .sample import add_run_arguments

EXAMPLE = """examples:
  rnnkit analyze gradients runs/adding-rnn --compare runs/adding-lstm runs/adding-gru
                                  ||dL/dh_k|| k steps back, at init and trained, on one plot
  rnnkit analyze spectra runs/lm  eigenvalues of W_hh per gate, radius per checkpoint,
                                  and the forward signal ||dh_t/dx_1||
  rnnkit analyze units runs/lm --text mycode.py
                                  the unit that best follows each feature of the text
  rnnkit analyze attention runs/dates "3 May 2021"
                                  where a seq2seq model looked for each output token
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="look inside a trained model: gradient flow, spectra, unit probes, "
        "attention", description="Look inside a trained recurrent model (gradients, spectra: "
        "a run of rnnkit train lm or synthetic; units: lm; attention: seq2seq). Results go to "
        "RUN_DIR/analysis/ (JSON and PNG).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)

    g = which.add_parser("gradients", help="gradient flow through time (deck 000)",
                         description="The norm of dL/dh_k for every step k back from the loss, "
                         "per layer, at initialisation and after training, on a log plot "
                         "(analysis/gradients.png).", epilog=EXAMPLE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(g)
    g.add_argument("--compare", nargs="+", metavar="RUN", default=[],
                   help="more runs to draw on the same plot (analysis/gradients_compare.png "
                   "of RUN_DIR)")
    g.add_argument("--batch", type=int, default=16, metavar="N",
                   help="sequences of the validation data averaged over (16)")
    g.add_argument("--length", type=int, default=None, metavar="T",
                   help="steps per sequence, language models (default: the run's --seq-len)")
    g.add_argument("--loss", choices=("last", "all"), default="last",
                   help="the loss at the last step only (default) or summed over all steps")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=run_gradients_cmd)

    s = which.add_parser("spectra", help="recurrent-matrix spectra and the forward signal",
                         description="Eigenvalues and singular values of each recurrent matrix "
                         "(per gate block for LSTM and GRU), the spectral radius at every "
                         "checkpoint, and ||dh_t/dx_1|| over t (analysis/spectra.png).",
                         epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(s)
    s.add_argument("--batch", type=int, default=2, metavar="N",
                   help="sequences the forward signal is averaged over (2; its cost grows "
                   "with N times the input width)")
    s.add_argument("--length", type=int, default=None, metavar="T",
                   help="steps per sequence, language models (default: the run's --seq-len)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_spectra_cmd)

    u = which.add_parser("units", help="unit probes: which unit tracks which text feature",
                         description="Correlate every hidden and cell unit of a character "
                         "language model with features of the text (position in line, inside "
                         "a string or comment, bracket depth, indentation, inside quotes); one "
                         "line per feature: feature, best unit, correlation. Also "
                         "analysis/units.{json,html,png}.", epilog=EXAMPLE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(u)
    u.add_argument("--text", metavar="PATH", help="a UTF-8 text to read (default: the run's "
                   "validation text)")
    u.add_argument("--max-chars", type=int, default=20_000, metavar="N",
                   help="read at most this many characters (20000)")
    u.add_argument("--json", action="store_true", help="print one JSON object")
    u.set_defaults(func=run_units_cmd)

    a = which.add_parser("attention", help="attention maps of an encoder-decoder run",
                         description="Decode a few sources with a seq2seq run and show where "
                         "the decoder looked for each output token (analysis/attention.png; "
                         "here as text heatmaps).", epilog=EXAMPLE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(a)
    a.add_argument("inputs", nargs="*", metavar="TEXT",
                   help="sources to decode (default: the run's first 4 validation sources)")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=run_attention_cmd)


def _positive(name: str, value: int | None) -> None:
    from ..errors import UserError

    if value is not None and value < 1:
        raise UserError(f"--{name} must be a positive whole number, got {value}")


def run_gradients_cmd(args) -> int:
    from ..analysis.gradients import compare_gradients, run_gradients
    from ..train.checkpoint import to_json

    _positive("batch", args.batch)
    _positive("length", args.length)
    if args.compare:
        result = compare_gradients([args.run_dir, *args.compare], args.checkpoint, args.batch,
                                   args.length, args.loss)
        runs = result["runs"]
    else:
        result = run_gradients(args.run_dir, args.checkpoint, args.batch, args.length, args.loss)
        runs = [result]
    if args.json:
        print(to_json(result))
        return 0
    span = runs[0]["falloff_steps"]
    print(f"{'run':<40} {'when':<8} {'layer':>5} {'|dL/dh| at T':>13} {f'{span} back':>11} "
          f"{'fall':>9}")
    for r in runs:
        for name in ("init", "trained"):
            for layer, norms in enumerate(r[name]["norms"]):
                fall = r[name]["falloff"][layer]
                print(f"{r['label'][:40]:<40} {name:<8} {layer:>5} {norms[0]:>13.3e} "
                      f"{norms[min(r['falloff_steps'], len(norms) - 1)]:>11.3e} "
                      f"{'inf' if fall is None else f'{fall:.1e}':>9}")
    print(f"wrote {_where(args.run_dir, 'gradients_compare' if args.compare else 'gradients')}",
          file=sys.stderr)
    return 0


def run_spectra_cmd(args) -> int:
    from ..analysis.spectra import run_spectra
    from ..train.checkpoint import to_json

    _positive("batch", args.batch)
    _positive("length", args.length)
    result = run_spectra(args.run_dir, args.checkpoint, args.batch, args.length)
    if args.json:
        print(to_json(result))
        return 0
    print(f"{'checkpoint':<10} {'step':>7} {'layer':>5} {'gate':>6} {'radius':>8} {'max sv':>8}")
    for c in result["checkpoints"]:
        for layer, blocks in enumerate(c["layers"]):
            for gate, spec in blocks.items():
                print(f"{c['checkpoint']:<10} {c['step'] if c['step'] is not None else '?':>7} "
                      f"{layer:>5} {gate:>6} {spec['spectral_radius']:>8.3f} "
                      f"{spec['max_singular_value']:>8.3f}")
    for name, layers in result["forward_signal"].items():
        for layer, norms in enumerate(layers):
            picks = [t for t in (1, 10, 100) if t <= len(norms)]
            said = ", ".join(f"t={t}: {norms[t - 1]:.2e}" for t in picks)
            print(f"forward signal ||dh_t/dx_1||, {name}, layer {layer}: {said}")
    print(f"wrote {_where(args.run_dir, 'spectra')}", file=sys.stderr)
    return 0


def run_units_cmd(args) -> int:
    from ..analysis.probes import run_units
    from ..train.checkpoint import to_json

    _positive("max-chars", args.max_chars)
    result = run_units(args.run_dir, args.text, args.checkpoint, args.max_chars)
    if args.json:
        print(to_json(result))
        return 0
    for p in result["features"]:
        if p["correlation"] is None:
            print(f"{p['feature']:<18} -  (constant over this text)")
            continue
        unit = f"layer {p['layer']} unit {p['index']} {p['state']}"
        print(f"{p['feature']:<18} {unit:<28} {p['correlation']:+.3f}")
    print(f"wrote {_where(args.run_dir, 'units')} (and units.html)", file=sys.stderr)
    return 0


def run_attention_cmd(args) -> int:
    from ..analysis.attention import run_attention
    from ..train.checkpoint import to_json

    result = run_attention(args.run_dir, args.checkpoint, args.inputs or None)
    if args.json:
        print(to_json(result))
        return 0
    if not result["examples"]:
        print("this model decodes without attention (--attention none): no maps to draw")
    shades = " .:-=+*#%@"
    for e in result["examples"]:
        print(f"{e['source']} -> {e['output']}")
        width = max(len(t) for t in e["output_tokens"])
        for token, row in zip(e["output_tokens"], e["weights"]):
            print(f"  {token:>{width}} " + "".join(shades[min(9, int(w * 10))] for w in row))
    if result["examples"]:
        print(f"wrote {_where(args.run_dir, 'attention')}", file=sys.stderr)
    return 0


def _where(run_dir: str, stem: str) -> str:
    from ..analysis.runs import analysis_dir

    base = analysis_dir(run_dir)
    return f"{base / stem}.json and {base / stem}.png"
