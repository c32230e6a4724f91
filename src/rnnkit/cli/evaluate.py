"""`rnnkit evaluate RUN_DIR [--text PATH]`: score text with a trained language model; without
--text or --dataset, the run's own test split, read exactly as training read it."""

from __future__ import annotations

import argparse
import glob
import os
import sys

from .sample import add_run_arguments

EXAMPLE = """examples:
  rnnkit evaluate runs/lm                  the run's own test split (summary.json's test_bpc)
  rnnkit evaluate runs/lm --split val --json
  rnnkit evaluate runs/lm --text notes.txt
  rnnkit evaluate runs/lm --dataset python-docs --split test --json
"""
SPLITS = ("all", "train", "val", "test")
FIELDS = ("tokens", "chars", "loss", "perplexity", "bpc")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score text with a trained language model (loss, perplexity, bpc)",
        description="Score text with a trained language model: tokens, chars, loss (nats per "
        "token), perplexity and bpc (total nats over characters, so every tokenizer compares). "
        "Without --text or --dataset it scores the run's own corpus, read and split exactly as "
        "training did: its test split by default, so the bpc is summary.json's test_bpc.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--text", metavar="PATH", help="score this text instead of the run's own: "
                   "a UTF-8 file, a directory or a glob")
    p.add_argument("--dataset", metavar="NAME",
                   help="score this built-in corpus instead of the run's own")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="score only this part of the text, split as training splits it; on the "
                   "run's own corpus exactly the run's split (default: test on the run's own "
                   "corpus, all of a --text or --dataset)")
    p.add_argument("--max-chars", type=int, default=None,
                   help="read at most this many characters of the text (default: all, or "
                   "as much as training read when it is the run's own corpus)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import load_language_model
    from ..data import load_corpus
    from ..errors import UserError
    from ..train.checkpoint import to_json

    own = args.text is None and args.dataset is None  # the run's own corpus
    if args.text is not None:
        load_corpus(text=args.text, max_chars=1)  # a bad path fails before a model is loaded
    model = load_language_model(args.run_dir, args.checkpoint, "rnnkit evaluate")
    cfg = model.config
    split = args.split or ("test" if own else "all")
    if own:
        if "dataset" not in cfg and "text" not in cfg:
            raise UserError(f"{args.run_dir}/config.json does not say which text the run was "
                            "trained on; give --text PATH or --dataset NAME")
        dataset, text = cfg.get("dataset"), cfg.get("text")
        for key in ("text",) if split == "all" else ("text", "val", "test"):
            if cfg.get(key) is not None and not _exists(str(cfg[key])):
                raise UserError(_moved(f"--{key}", str(cfg[key]), cfg, split))
    else:
        dataset, text = args.dataset, args.text
    max_chars = args.max_chars
    same = own or _is_training_corpus(args, cfg)
    if max_chars is None and same:
        max_chars = cfg.get("max_chars")  # read it as training did: the same splits
    if split == "all":
        corpus = load_corpus(dataset, text, max_chars, report=_say)
    else:
        corpus = _split(cfg, split, same, {"dataset": dataset, "text": text,
                                           "max_chars": max_chars})
    result = model.score(corpus)
    if args.json:
        print(to_json(result))  # always valid JSON: a non-finite number is null
    else:
        for name in FIELDS:
            value = result[name]
            print(f"{name:<11} {value:.4f}" if isinstance(value, float) else f"{name:<11} {value}")
    return 0


def _split(cfg: dict, split: str, same: bool, data: dict) -> str:
    """``split`` of ``data`` cut as the run cut its text; ``same`` (the run's own corpus): with
    the run's --val and --test files, and, read as training read it, checked against the sizes
    the run recorded."""
    from ..errors import UserError
    from ..train.lm import lm_splits

    held = {k: cfg.get(k) if same else None for k in ("val", "test")}
    parts = lm_splits({**cfg, **data, **held}, report=_say)
    corpus = getattr(parts, split)
    # a run from before split_chars recorded its training characters only
    recorded = cfg.get("split_chars") or {
        "train_chars": (cfg.get("sized_from_text") or {}).get("train_chars")}
    now = parts.chars()
    changed = [k for k, n in recorded.items() if n is not None and now.get(k) != n]
    if same and data["max_chars"] == cfg.get("max_chars") and changed:
        k = changed[0]
        _say(f"note: the {k.removesuffix('_chars')} split has {now[k]:,} characters now, "
             f"{recorded[k]:,} when the run trained: the text changed since, so this {split} "
             "split is not quite the run's")
    if not corpus:
        raise UserError(f"the run has no {split} split ({split}_fraction 0); choose "
                        "another --split")
    return corpus


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _exists(spec: str) -> bool:
    """Whether a --text value still names something: a path, or a glob that matches."""
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        return True
    return any(ch in spec for ch in "*?[") and bool(glob.glob(path, recursive=True))


def _moved(flag: str, path: str, cfg: dict, split: str) -> str:
    """The one-line error for a run whose --text (or --val, --test) is not where training read
    it."""
    where = "" if os.path.isabs(os.path.expanduser(path)) else (
        " (a path relative to the directory training ran in)")
    max_chars = cfg.get("max_chars")
    keep = f" --max-chars {max_chars}" if max_chars else ""
    fix = (f"give its present path: --text PATH{keep} --split {split}" if flag == "--text" else
           "score that text by its present path: --text PATH")
    return (f"the run was trained on {flag} {path}, which is not found from {os.getcwd()}"
            f"{where}; run this from that directory, or {fix}")


def _is_training_corpus(args, cfg: dict) -> bool:
    """Whether --text/--dataset names the corpus the run was trained on."""
    from ..data import DEFAULT_DATASET

    if args.text is not None:
        if cfg.get("text") is None:
            return False
        given, trained = str(args.text), str(cfg["text"])
        if given == trained:
            return True
        try:  # the same file or directory under another name (absolute, ./, ~)
            return os.path.samefile(os.path.expanduser(given), os.path.expanduser(trained))
        except OSError:
            return False
    return cfg.get("text") is None and args.dataset == (cfg.get("dataset") or DEFAULT_DATASET)
