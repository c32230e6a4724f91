"""`rnnkit report RUN_DIR`: one self-contained HTML page for a run (RUN_DIR/report.html):
config, loss curves, samples, and the analyses that apply (computed when not yet made)."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  rnnkit report runs/lm              write runs/lm/report.html and print its path
  rnnkit report runs/lm --refresh    recompute every analysis first
"""


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "report", help="write RUN_DIR/report.html: config, losses, samples and analyses",
        description="Write one self-contained HTML page for a run (no network, images "
        "inline; it opens in a browser from disk): the config and summary, loss curves, "
        "samples, and whichever analyses apply (gradient flow, spectra, unit probes with a "
        "unit picker, attention maps). Analyses not yet under RUN_DIR/analysis/ are computed.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--refresh", action="store_true",
                   help="recompute the analyses even where RUN_DIR/analysis/ has them")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis.report import write_report

    print(write_report(args.run_dir, args.checkpoint, args.refresh))
    return 0
