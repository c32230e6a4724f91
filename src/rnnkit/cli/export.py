"""`rnnkit export RUN_DIR --onnx FILE`: a trained run's network as ONNX (see ``rnnkit.export``),
checked in onnxruntime against PyTorch before the command says it is done."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  rnnkit export runs/demo --onnx lm.onnx      one chunk of the language model, state in and out
  rnnkit export runs/add --onnx add.onnx      the encoder, and the decoder step in
                                              add.decoder.onnx (the beam search stays yours)
  rnnkit export runs/rev --onnx rev.onnx --json   what was written, as JSON

what each task's graph takes and gives (time-major; batch and time are dynamic axes):
  lm          tokens (T, B), h [, c] -> logits (T, B, V), h_out [, c_out]
  generator   tokens, condition (label ids or features), start (B,) bool, h [, c]
              -> logits, h_out [, c_out]   (start: the state begins from the condition)
  classifier  tokens (T, B) or features (T, B, F), lengths (B,) -> logits (B, classes)
  tagger      tokens (T, B) or features (T, B, F), lengths (B,) -> logits (T, B, tags)
  synthetic   inputs (T, B, F) or (T, B) -> outputs
  forecaster  values (T, B, F) scaled, h [, c] -> params (T, B, outputs, P), h_out [, c_out]
  seq2seq     source (S, B), lengths -> memory, keys, mask, final, h0 [, c0];
              FILE.decoder.onnx: y_prev (B,), those, h [, c] -> logits, h_out [, c_out],
              attention
  word2vec    ids (N,) -> vectors (N, D)  (rnnkit embed --export writes word2vec text)
Each file's metadata names the task, inputs, outputs, vocabulary file and labels. A cell
torch has no kernel for (mut1, nas, minGRU ...) is recorded step by step, so its graph has a
fixed length: 1 step a call for lm, generator and forecaster, --steps (default 64) for the
others (pad to it: classifier, tagger and seq2seq read lengths).
"""


def add_parser(sub) -> None:
    from .sample import add_run_arguments

    p = sub.add_parser(
        "export", help="write a trained run's network as ONNX, checked in onnxruntime",
        description="Write the network of a trained run as an ONNX file (the TorchScript "
        "exporter, opset 17) that onnxruntime and other ONNX runtimes load, with the task, "
        "input and output names and the vocabulary file in its metadata. Each file is run in "
        "onnxruntime at another batch size and length than it was exported with and compared "
        "with PyTorch (at most 1e-5 apart) before the command succeeds. Loops that drive the "
        "network (sampling, beam search, feeding forecasts back) stay with the caller.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--onnx", metavar="FILE", required=True,
                   help="the .onnx file to write (a seq2seq run also writes FILE with "
                   ".decoder.onnx for its decoder step)")
    p.add_argument("--steps", type=int, default=64, metavar="N",
                   help="fixed length of a graph whose cell torch has no kernel for "
                   "(default 64; lm, generator and forecaster: 1 step a call)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: the files written, their inputs, outputs and "
                   "onnxruntime's largest difference from PyTorch")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import export
    from ..train.checkpoint import to_json

    done = export(args.run_dir, args.onnx, args.checkpoint, args.steps)
    if args.json:
        print(to_json({"task": done[0].task, "files": [e.as_dict() for e in done]}))
        return 0
    for e in done:
        diff = "not checked (no onnxruntime)" if e.max_abs_diff is None else \
            f"onnxruntime - PyTorch <= {e.max_abs_diff:.1e}"
        steps = "" if e.steps is None else f", {e.steps} time steps"
        print(f"{e.path}  {e.task} {e.graph}: {', '.join(e.inputs)} -> "
              f"{', '.join(e.outputs)}{steps}; {diff}")
    return 0
