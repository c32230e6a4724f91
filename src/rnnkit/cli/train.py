"""`rnnkit train TASK`: parse the flags into settings and call the task's ``run_*`` function.

``rnnkit train`` alone (or with flags only) is ``rnnkit train lm``: the main job, a character
LSTM on the built-in corpus. Results go to stdout (``--json``: one JSON object), progress
bars, samples and logs to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import shlex
import signal
import sys

from ..errors import UserError

# tasks beside lm, each in cli/train_TASK.py: add_parser(tasks, common), train(given) -> summary,
# report(summary) -> the lines printed without --json
OTHER_TASKS: tuple[str, ...] = ("seq2seq", "synthetic", "classifier", "generator", "word2vec",
                                 "tagger", "forecaster")

EXAMPLES = """examples:
  rnnkit train                                   the main job: a char LSTM, about 10 minutes
  rnnkit train lm --text notes.txt --cell gru --hidden 256 --steps 1000 --out runs/notes
  rnnkit train lm --dataset python-docs --tokenizer bpe --max-time 120
  rnnkit train lm --resume runs/notes            continue a stopped run
  torchrun --nproc_per_node=2 -m rnnkit train lm --batch-size 64 --out runs/ddp
"""


def _flags(p: argparse.ArgumentParser) -> None:
    """The lm flags (DESIGN.md's core flags plus the language model's own)."""
    from ..data import DATASETS
    from ..data.tokenizers import KINDS
    from ..train.lm import DEFAULTS as d

    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"built-in corpus: {', '.join(DATASETS)} "
                   "(default python-source)")
    g.add_argument("--text", metavar="PATH", help="your own text: a file, directory or glob")
    g.add_argument("--max-chars", type=int, metavar="N",
                   help=f"use at most N leading characters (default {d['max_chars']:,})")
    g.add_argument("--val", metavar="PATH", help="held-out text for validation, read as --text "
                   "is, all of it (default: cut --val-fraction from --text)")
    g.add_argument("--test", metavar="PATH", help="held-out text for the test scores "
                   "(default: cut --test-fraction from --text)")
    g.add_argument("--val-fraction", type=float, metavar="F",
                   help="of the text, without --val: the last files of a directory or glob of "
                   f"3 or more, else the tail ({d['val_fraction']})")
    g.add_argument("--test-fraction", type=float, metavar="F",
                   help=f"of the text, without --test, cut the same way ({d['test_fraction']})")
    g.add_argument("--tokenizer", choices=KINDS, help="char (default), word or bpe")
    g.add_argument("--vocab-size", type=int, metavar="N", help="for word and bpe tokenizers")
    g = p.add_argument_group("model")
    g.add_argument("--cell", help=f"recurrent cell (default {d['cell']}; see rnnkit cells), "
                   "or a cell of yours: FILE.py:CLASS (see rnnkit gradcheck)")
    g.add_argument("--embed", type=int, metavar="N",
                   help="embedding size (default: by the text's size, 64 or 128)")
    g.add_argument("--hidden", type=int, metavar="N",
                   help="hidden size (default: by the text's size, 256 below 600 k training "
                   "characters up to 512 from 1.2 M; config.json records what was chosen)")
    g.add_argument("--layers", type=int, metavar="N", help=f"stacked layers ({d['layers']})")
    g.add_argument("--dropout", type=float, metavar="P",
                   help="dropout (default: by the text's size, 0.25 for small texts down to "
                   "0.1 from 1.2 M characters)")
    g.add_argument("--embed-dropout", type=float, metavar="P",
                   help="drop whole word types from the embedding per batch (AWD-LSTM's "
                   "embedding dropout; 0: off, the default; e.g. 0.1 for word tokens)")
    regulariser_flags(g)
    g.add_argument("--tie-weights", action=argparse.BooleanOptionalAction,
                   help="share embedding and output weights (needs --embed == --hidden)")
    g.add_argument("--embeddings", metavar="PATH", help="start the embedding from pretrained "
                   "word vectors (word2vec text format, e.g. rnnkit embed RUN --export; with "
                   "--tokenizer word)")
    g.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction,
                   help="keep the pretrained vectors as they are (off: fine-tune them)")
    g.add_argument("--backend", choices=("auto", "native", "bptt", "autograd", "scan"))
    g = p.add_argument_group("batches")
    g.add_argument("--batch-size", type=int, metavar="N",
                   help="global batch size, split over torchrun processes (32; with --max-time, 8 "
                   "on a text under 1.2 M characters where that buys more steps)")
    g.add_argument("--seq-len", "--bptt", type=int, metavar="N", dest="seq_len",
                   help=f"steps per batch; truncated BPTT length ({d['seq_len']})")
    g.add_argument("--stateless", action=argparse.BooleanOptionalAction,
                   help="independent shuffled windows from a zero state, instead of carrying "
                   "the state along contiguous streams")
    g = training_flags(p, d, lr_help="learning rate (default: by the text's size, 5e-3 for "
                       "small texts down to 3e-3 from 1.2 M characters; 1e-2 where --max-time "
                       "takes 8 rows a step or narrows the width)")
    g.add_argument("--eval-tokens", type=int, metavar="N",
                   help="tokens of the validation text the periodic evaluations score (0: all; "
                   f"{d['eval_tokens']:,}); the final scores read all of it")
    g = p.add_argument_group("samples")
    g.add_argument("--prime", metavar="TEXT", help="text the samples start from")
    g.add_argument("--sample-length", type=int, metavar="N")
    g.add_argument("--temperature", type=float, metavar="T")
    run_flags(p, "lm")


def regulariser_flags(g: argparse._ArgumentGroup) -> None:
    """The recurrent regularisers (``rnnkit.Recurrent``'s options of the same names), added to
    a task's model group; 0, the default, is off and leaves them out of the model's config."""
    g.add_argument("--recurrent-dropout", type=float, metavar="P",
                   help="dropout on h(t-1) where it enters W_hh, one mask per sequence (Gal & "
                   "Ghahramani; 0: off)")
    g.add_argument("--weight-drop", type=float, metavar="P",
                   help="DropConnect on W_hh's columns, one mask for the batch (AWD-LSTM's "
                   "weight drop; 0: off)")
    g.add_argument("--zoneout", type=float, metavar="P",
                   help="each unit of h (and c) keeps its old value with probability P per "
                   "step (Krueger et al.; 0: off)")


def training_flags(p: argparse.ArgumentParser, d: dict, lr_help: str | None = None
                   ) -> argparse._ArgumentGroup:
    """The Trainer's flags, the same for every task (``d``: the task's DEFAULTS); returns the
    group, for a task's own additions."""
    g = p.add_argument_group("training")
    g.add_argument("--lr", type=float, metavar="X", help=lr_help or f"learning rate ({d['lr']:g})")
    g.add_argument("--optimizer", choices=("adamw", "sgd"), help="adamw (default) or sgd "
                   "with momentum")
    g.add_argument("--weight-decay", type=float, metavar="X",
                   help="weight decay (" + (
                       "sized from the text" if d["weight_decay"] is None
                       else f"{d['weight_decay']:g}") + ")")
    g.add_argument("--momentum", type=float, metavar="X", help="for sgd (0.9)")
    g.add_argument("--clip", type=float, metavar="X", help=f"gradient clipping ({d['clip']}; "
                   "0: off)")
    g.add_argument("--clip-mode", choices=("norm", "value"), help="clip the norm (default) or "
                   "each value")
    g.add_argument("--schedule", choices=("cosine", "constant"), help="after the warmup")
    g.add_argument("--warmup", type=int, metavar="N", help=f"warmup steps ({d['warmup']})")
    g.add_argument("--ema", type=float, metavar="DECAY",
                   help=f"evaluate and keep a moving average of the weights, horizon up to "
                   f"1/(1-DECAY) steps ({d['ema']:g}; 0: off, the last step's weights)")
    g.add_argument("--patience", type=int, metavar="N",
                   help="early stopping after N evaluations without improvement (0: off)")
    g.add_argument("--epochs", type=int, metavar="N", help="budget in epochs")
    g.add_argument("--steps", type=int, metavar="N", help="budget in steps")
    clock = ("budget in seconds (default: by the data set, see below)" if d["max_time"] is None
             else f"budget in seconds (default {d['max_time']:g} when neither --steps nor "
             "--epochs is given; with them, whichever ends first)")
    g.add_argument("--max-time", type=float, metavar="SECONDS", help=clock)
    g.add_argument("--eval-every", type=int, metavar="N",
                   help="evaluate every N steps (default: 16 times over the budget, in steps "
                   "or seconds; the best evaluation's checkpoint is the one kept)")
    g.add_argument("--log-every", type=int, metavar="N", help=f"({d['log_every']})")
    g.add_argument("--checkpoint-every", type=int, metavar="N",
                   help=f"resumable checkpoint every N steps ({d['checkpoint_every']})")
    g.add_argument("--seed", type=int, metavar="N")
    g.add_argument("--device", help="auto (default: CUDA when present), cpu or cuda")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is faster for tiny "
                   "models or on a busy machine)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="the progress bar on stderr (on)")
    return g


def run_flags(p: argparse.ArgumentParser, task: str) -> None:
    """--config, --out, --resume, --json: the same for every task."""
    g = p.add_argument_group("run")
    g.add_argument("--config", metavar="FILE", help="JSON settings; flags override them")
    g.add_argument("--out", metavar="DIR", help=f"run directory (default runs/{task}-TIMESTAMP)")
    g.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    g.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def add_parser(sub) -> None:
    common = dict(formatter_class=argparse.RawDescriptionHelpFormatter,
                  argument_default=argparse.SUPPRESS)
    p = sub.add_parser("train", help="train a model (default: the character LSTM main job)",
                       description="Train a model into a run directory. `rnnkit train` alone "
                       "trains the language model (same flags as `rnnkit train lm`).",
                       epilog=EXAMPLES, **common)
    _flags(p)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    lm = tasks.add_parser("lm", help="a recurrent language model on text",
                          description="Train a recurrent language model (embedding, recurrent "
                          "stack, output layer) on a built-in corpus or your text.",
                          epilog=EXAMPLES, **common)
    _flags(lm)
    for name in OTHER_TASKS:
        importlib.import_module(f"rnnkit.cli.train_{name}").add_parser(tasks, common)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the task named (lm by default) and report it: the summary as one JSON object
    (``--json``) or a few lines, and the one-line errors and signals every task shares."""
    from ..train.checkpoint import to_json

    task = getattr(args, "task", None) or "lm"
    if task == "lm":
        from ..train.lm import run_lm as train
        report = _report
    else:
        module = importlib.import_module(f"rnnkit.cli.train_{task}")
        train, report = module.train, module.report
    given = {k: v for k, v in vars(args).items() if k not in ("command", "task", "func")}
    if "cell" in given:
        given["cell"] = _cell(given["cell"])
    as_json = given.pop("json", False)
    summary = train(given)
    if summary["status"] == "nonfinite":
        raise UserError(f"training stopped: {summary['error']}; the last good checkpoint is "
                        f"kept in {summary['out']}/checkpoints; lower --lr or keep --clip on")
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    if as_json:
        print(to_json(summary))  # always valid JSON: a NaN (no val split, say) is null
        for line in summary.get("warnings", []):
            print(f"rnnkit: warning: {line}", file=sys.stderr)
    elif summary["status"] != "interrupted":
        print(report(summary))
    if summary["status"] == "interrupted":
        return _interrupted(summary)
    return 0


def _cell(cell: str) -> str:
    """``--cell FILE.py:CLASS``: a cell of yours, imported now (a UserError if it fails) and
    named by the file's absolute path, which the run records to import it again at load."""
    from ..cells import cell_class, is_spec
    from ..cells.user import absolute_spec

    if not is_spec(cell):
        return cell
    cell = absolute_spec(cell)
    cell_class(cell)
    return cell


def _interrupted(s: dict) -> int:
    """One line on stderr: where the run stopped and the command that continues it; the exit
    status a shell expects after the signal (128 + its number)."""
    print(f"rnnkit: {s['signal']} at step {s['steps']:,}: a resumable checkpoint is in "
          f"{s['out']}/checkpoints; continue with: rnnkit train {s['task']} --resume "
          f"{shlex.quote(s['out'])}", file=sys.stderr, flush=True)
    return 128 + int(getattr(signal, s["signal"]))


def _report(s: dict) -> str:
    def num(key: str) -> str:
        v = s.get(key)
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    out = s["out"]
    lines = [
        f"run:        {out}  ({s['status']}, {s['steps']} steps, {s['train_seconds']:.0f} s, "
        f"{s['tokens_per_second']:,.0f} tokens/s)",
        f"val bpc:    {num('val_bpc')}   (n-gram baseline {num('val_ngram_bpc')})",
        f"test bpc:   {num('test_bpc')}   (n-gram baseline {num('test_ngram_bpc')})",
        f"sample it:  rnnkit sample {shlex.quote(out)} --prime "
        f"{shlex.quote(s.get('sample_prime') or 'a')} --length 500",
    ]
    lines += [f"note:       {w}" for w in s.get("warnings", [])]
    return "\n".join(lines)

