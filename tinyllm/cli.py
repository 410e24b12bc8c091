"""The command line: `tinyllm train`, `sample`, `export`, `prepare`, `gradcheck` (also `python -m tinyllm`).

Bad input never shows a traceback: every error the library raises for it is
one line on stderr naming the problem and the fix. Exit codes (each error carries its
own: tinyllm/errors.py; run_guarded below prints it):

    0    success
    1    `tinyllm gradcheck` found an op whose gradient is wrong
    2    bad input: settings, data file, prompt, device, checkpoint, output directory, a GPT-2
         directory or export destination, or a directory locked by another run (argparse's own
         usage errors are 2 as well)
    3    training failed while running: the loss went nan/inf, or out of memory (also a model, or
         a data file, too large for the memory)
    130  interrupted with Ctrl-C (after saving a checkpoint on the first one)
    143  stopped by SIGTERM (`kill`, a job scheduler), after saving a checkpoint, like Ctrl-C

A mistake in the flags is one line too: the error and a pointer to --help.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from backends import tune_malloc
from backends.devices import names as device_names

from .errors import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,  # noqa: F401
                     CheckpointError, ConfigError, Interrupted, TinyLLMError, TokenizerError)
from .data import DATASETS
from .data.bpe import DEFAULT_VOCAB
from .data.prepare_cli import add_prepare_command
from .models import MODELS
from .optim import SCHEDULES
from .train.config import OPTIMIZERS, TOKENIZERS, TrainConfig, model_default
from .guards import point_at_devnull


def _to_stderr(line: str) -> None:
    """The closing error line, where stderr can take it (>/dev/full: the exit code still says it; the stream
    is pointed at /dev/null, as train/log.py does, so the interpreter's last flush does not fail again)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        point_at_devnull(sys.stderr)


def run_guarded(fn, *args) -> int:
    """Call fn(*args) -> exit code; an error a user can act on becomes its one line on stderr and its exit code."""
    try:
        return fn(*args) or EXIT_OK
    except TinyLLMError as e:  # bad input 2, a failed run 3, a signal 128 + N (its message says what was saved)
        _to_stderr(e.line())
        return e.exit_code
    except KeyboardInterrupt:
        _to_stderr("interrupted: stopped at once; the last saved checkpoint (if any) is intact")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tinyllm sample | head`: the reader has all it wanted
        point_at_devnull(sys.stdout)
        return EXIT_OK


# -- tinyllm train ----------------------------------------------------------------------------------

D = TrainConfig()  # defaults, for the help text
OUT = "out"  # the CLI's output directory (the library's default is a fresh runs/... directory)
DEVICES = device_names()  # "auto, cpu, cuda, cuda:N, strict or strict:N": backends/devices.py's table


def _per_model(name: str) -> str:
    """'default 4 for gpt, 16 for mlp': the value each model uses when the flag is not given."""
    parts = [(m, model_default(m, name)) for m in MODELS]
    parts = [f"{'on' if v is True else 'off' if v is False else v} for {m}" for m, v in parts if v is not None]
    return "default " + ", ".join(parts)

TRAIN_EXAMPLES = """\
examples:
  tinyllm train                                  # a GPT on the embedded names, ~2 minutes on a laptop CPU
  tinyllm train --data input.txt --steps 5000 --block-size 64 --out shakespeare
  tinyllm train --device cuda --n-layer 6 --n-embd 192 --batch-size 64
  tinyllm train --resume --out out               # continue a run (flags given override its settings)
  tinyllm train --config run.toml --lr 3e-3      # settings from a TOML file; flags win
  tinyllm train --data input.txt --tokenizer bpe --vocab-size 512   # byte-level BPE instead of characters
  tinyllm train --init-from gpt2 --data my.txt --lr 3e-5 --block-size 256   # fine-tune a local GPT-2 directory

The output directory gets checkpoint.json + a .safetensors file, log.jsonl and loss.png.
Exit codes: 0 ok, 2 bad input (one line on stderr), 3 training diverged or ran out of memory, 130 Ctrl-C,
143 SIGTERM (both save a checkpoint first).
"""


def _add_train_args(p: argparse.ArgumentParser) -> None:
    _add_model_args(p.add_argument_group("data and model"))
    _add_optimizer_args(p.add_argument_group("optimisation"))
    _add_output_args(p.add_argument_group("evaluation and output"))


UNSET = argparse.SUPPRESS  # a train flag left out stays absent, so TOML / checkpoint settings show through


def _add_model_args(g) -> None:
    g.add_argument("--data", default=UNSET, metavar="NAME|PATH",
                   help=f"an embedded dataset ({', '.join(DATASETS)}; default {D.data}) or a UTF-8 text file")
    g.add_argument("--lines", action=argparse.BooleanOptionalAction, default=UNSET,
                   help="treat a text file as one example per line like names (default: guess)")
    g.add_argument("--raw-text", action="store_true", default=UNSET,
                   help="read a text file as it is: keep a byte-order mark and \\r\\n line ends "
                        "(default: the mark is removed, line ends become \\n)")
    g.add_argument("--model", default=UNSET, choices=list(MODELS), help=f"model to train (default {D.model})")
    g.add_argument("--n-layer", type=int, default=UNSET, metavar="N",
                   help=f"transformer blocks ({_per_model('n_layer')})")
    g.add_argument("--n-head", type=int, default=UNSET, metavar="N", help=f"attention heads ({_per_model('n_head')})")
    g.add_argument("--n-embd", type=int, default=UNSET, metavar="N",
                   help=f"embedding width, divisible by --n-head ({_per_model('n_embd')})")
    g.add_argument("--block-size", type=int, default=UNSET, metavar="N",
                   help=f"context length in tokens ({_per_model('block_size')})")
    g.add_argument("--dropout", type=float, default=UNSET, metavar="P",
                   help=f"dropout probability ({_per_model('dropout')})")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, default=UNSET,
                   help=f"biases in Linear and LayerNorm layers ({_per_model('bias')})")
    g.add_argument("--tokenizer", default=UNSET, choices=TOKENIZERS,
                   help=f"default {D.tokenizer} (characters; words for arithmetic); bpe: a byte-level BPE trained on "
                        f"the training split (needs: pip install 'tinyllm[bpe]')")
    g.add_argument("--vocab-size", type=int, default=UNSET, metavar="N",
                   help=f"BPE vocabulary size (default {DEFAULT_VOCAB})")
    g.add_argument("--init-from", default=UNSET, metavar="DIR",
                   help="start from a local Hugging Face GPT-2 directory (config.json, model.safetensors, "
                        "tokenizer.json or vocab.json + merges.txt): its weights and tokenizer; nothing is downloaded")


def _add_optimizer_args(g) -> None:
    g.add_argument("--steps", type=int, default=UNSET, metavar="N",
                   help=f"optimizer steps in total (default {D.steps})")
    g.add_argument("--batch-size", type=int, default=UNSET, metavar="N",
                   help=f"sequences per step (default {D.batch_size})")
    g.add_argument("--optimizer", default=UNSET, choices=OPTIMIZERS, help=f"default {D.optimizer}")
    g.add_argument("--lr", type=float, default=UNSET, help=f"peak learning rate ({_per_model('lr')})")
    g.add_argument("--min-lr", type=float, default=UNSET, help="end of the cosine schedule (default lr/10)")
    g.add_argument("--warmup", type=int, default=UNSET, metavar="N",
                   help="linear warmup steps (default min(100, steps/10))")
    g.add_argument("--schedule", default=UNSET, choices=SCHEDULES, help=f"default {D.schedule}")
    g.add_argument("--weight-decay", type=float, default=UNSET, metavar="WD",
                   help=f"decoupled weight decay on matrices (default {D.weight_decay})")
    g.add_argument("--beta1", type=float, default=UNSET, help=f"Adam beta1 / SGD momentum (default {D.beta1})")
    g.add_argument("--beta2", type=float, default=UNSET, help=f"Adam beta2 (default {D.beta2})")
    g.add_argument("--grad-clip", type=float, default=UNSET, metavar="NORM",
                   help=f"clip the global gradient norm (default {D.grad_clip}; 0 = off)")
    g.add_argument("--skip-nonfinite", action="store_true", default=UNSET,
                   help="skip updates whose loss or gradient is nan/inf instead of stopping (counted in the log)")


def _add_output_args(g) -> None:
    g.add_argument("--eval-interval", type=int, default=UNSET, metavar="N",
                   help=f"evaluate, log and checkpoint every N steps (default {D.eval_interval})")
    g.add_argument("--log-interval", type=int, default=UNSET, metavar="N",
                   help=f"read the loss and gradient norm from the device every N steps (default {D.log_interval}); "
                        f"other steps wait for nothing")
    g.add_argument("--transfer-stats", action="store_true", default=UNSET,
                   help="print what crossed between host and device (copies, reads, bytes) per phase at the end")
    g.add_argument("--eval-iters", type=int, default=UNSET, metavar="N",
                   help=f"batches per split in an evaluation (default {D.eval_iters})")
    g.add_argument("--samples", type=int, default=UNSET, metavar="N",
                   help=f"samples printed at the end, and drawn at each evaluation into log.jsonl (default {D.samples})")
    g.add_argument("--report", action="store_true", default=False,
                   help="refresh RUN/report.html (as tinyllm report writes it) at every evaluation and at the end; "
                        "needs: pip install 'tinyllm[report]'")
    g.add_argument("--device", default=UNSET, help=f"{DEVICES} (default {D.device}); "
                                               f"an unusable GPU falls back to cpu with a warning")
    g.add_argument("--seed", type=int, default=UNSET, help=f"seed for weights, batches and dropout (default {D.seed})")
    g.add_argument("--out", default=UNSET, metavar="DIR", help=f"output directory (default {OUT})")
    g.add_argument("--resume", action="store_true", default=UNSET, help="continue from the checkpoint in --out")
    g.add_argument("--overwrite", action="store_true", default=UNSET,
                   help="replace an earlier run in --out (without it, a new run there is refused)")
    g.add_argument("--config", metavar="FILE.toml", default=None,
                   help="read settings from a TOML file (keys as the flags, e.g. n_layer = 6); flags override it")


def build_train_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults <- TOML file <- flags given. Resuming fills what neither gives from the checkpoint:
    TrainConfig.resolve(), which the Trainer applies, so a library run resumes the same way."""
    from .train.config import load_toml

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "func", "report")}
    settings = load_toml(args.config) if args.config else {}
    settings.update(flags)
    settings.setdefault("out", OUT)
    return TrainConfig.from_dict(settings)


def cmd_train(args) -> int:
    import warnings

    from .train.trainer import Trainer

    tune_malloc()  # a training process keeps freed activations in the heap (backends/cpu/malloc.py)
    # overflow/invalid-value warnings from the array library would only repeat, noisily, what the
    # non-finite guard then says in one line (or counts, with --skip-nonfinite); for this run only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        live = None
        if getattr(args, "report", False):  # only then is the report (plotly) imported, checked before anything
            from .report.charts import plotly_lib
            from .report.live import reporting as live
            plotly_lib()
        trainer = Trainer(build_train_config(args))
        with live(trainer) if live else contextlib.nullcontext():
            trainer.fit()
    return EXIT_OK


# -- tinyllm sample -----------------------------------------------------------------------------------

def _vocab_preview(tokenizer, limit: int = 80) -> str:
    toks = [t for t in tokenizer.itos if t != "<bos>"]
    sep = "" if tokenizer.kind == "char" else " "
    text = sep.join(toks)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _no_checkpoint(out: str) -> CheckpointError:
    from .train.checkpoint import has_checkpoint

    if os.path.isfile(out):
        run = os.path.dirname(out) or "."
        if has_checkpoint(run):
            return CheckpointError(f"--out takes a training run's directory, not a file in it: pass --out {run}")
        return CheckpointError(f"{out!r} is a file, not a training run's directory; pass --out the directory "
                               f"that tinyllm train --out DIR wrote")
    return CheckpointError(f"no checkpoint in {out!r}; train one first (tinyllm train --out {out}) "
                           f"or point --out at a training run's directory")


def _load_run(out: str, device):
    """(model, tokenizer, meta) of the training run in out; CheckpointError when it has none."""
    from .train.checkpoint import has_checkpoint
    from .train.resume import load_trained

    if not has_checkpoint(out):
        raise _no_checkpoint(out)
    return load_trained(out, device)


def cmd_sample(args) -> int:
    from .sample import iter_complete

    if args.init_from is not None:
        from .gpt2 import load_pretrained

        model, tok = load_pretrained(args.init_from, args.device)
    else:
        model, tok, _ = _load_run(args.out, args.device)
    if args.prompt:
        try:
            tok.encode(args.prompt)
        except TokenizerError as e:  # a BPE tokenizer encodes any UTF-8 text: no vocabulary to show
            known = f"; this model knows only {_vocab_preview(tok)}" if hasattr(tok, "itos") else ""
            raise TokenizerError(f"--prompt has {e}{known}") from None
    lines = tok.bos_id is not None

    def show(piece: str) -> None:  # text as it is generated
        sys.stdout.write(piece)
        sys.stdout.flush()

    # greedy decoding gives the same sample every time: one, unless --num-samples asks for more
    n = args.num_samples if args.num_samples is not None else 1 if args.temperature == 0 else 10
    samples = iter_complete(model, tok, args.prompt or "", n, args.max_new_tokens,
                            args.temperature, args.top_k, args.top_p, args.seed, on_text=None if lines else show)
    try:
        for i, t in enumerate(samples):
            print(t if lines else "", flush=True)  # text samples are already shown: end their line
            if not lines and i + 1 < n:
                show("-" * 40 + "\n")
    except KeyboardInterrupt:  # keep what is on the screen; end a half-written line
        print(flush=True)
        raise Interrupted("sampling interrupted (the samples so far are above)") from None
    return EXIT_OK


def _add_sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=OUT, metavar="DIR", help="training run directory with a checkpoint (default %(default)s)")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="sample a local Hugging Face GPT-2 directory instead of a run (config.json, "
                        "model.safetensors, tokenizer.json or vocab.json + merges.txt)")
    p.add_argument("--num-samples", type=int, default=None, metavar="N",
                   help="how many samples (default 10; 1 with --temperature 0, greedy, where all are the same)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = more varied (default %(default)s)")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only from the K most likely tokens")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="sample only from the smallest set of tokens whose probability reaches P")
    p.add_argument("--prompt", default="", help="text to continue (line data: the start of a line)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="tokens to generate per sample (default: a whole line for line data, 200 for text)")
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default %(default)s); any device loads any checkpoint")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")


# -- tinyllm export -------------------------------------------------------------------------------------

def cmd_export(args) -> int:
    from .gpt2 import export_model

    model, tok, meta = _load_run(args.out, "cpu")
    files = export_model(model, tok, args.dest)
    print(f"exported {args.out} (step {meta.get('step', '?')}) to {args.dest}: {', '.join(files)}")
    if "tokenizer.json" in files:
        print(f"load it with transformers: GPT2LMHeadModel.from_pretrained({args.dest!r}), "
              f"or: tinyllm sample --init-from {args.dest}")
        return EXIT_OK
    # --init-from needs a tokenizer: for a char run, say what DEST is good for instead
    print(f"note: the run's {getattr(tok, 'kind', '?')} tokenizer has no Hugging Face form, so none was written "
          f"(train with --tokenizer bpe to export one); {args.dest} holds the model alone")
    print(f"load it with transformers: GPT2LMHeadModel.from_pretrained({args.dest!r}), given the run's token ids "
          f"(its tokenizer is in {os.path.join(args.out, 'checkpoint.json')}); sample it with: "
          f"tinyllm sample --out {args.out}")
    return EXIT_OK


# -- tinyllm gradcheck ----------------------------------------------------------------------------------

def cmd_gradcheck(args) -> int:
    from backends import get_backend

    from .ops.checks import CASES, report

    backend = get_backend(args.device)
    cases = [c for c in CASES if not args.op or c.op in args.op]
    if not cases:
        raise ConfigError(f"no gradient check for op(s) {', '.join(args.op)}; known ops: "
                          f"{', '.join(sorted({c.op for c in CASES}))}")
    print(f"gradient check on {backend.name}: analytic (backward) vs numerical (central differences, float64)")
    failed, (worst, where) = report(backend, cases, lambda line: print(line, flush=True))
    print(f"{len(cases) - len(failed)}/{len(cases)} cases ok; worst error {worst:.2e} ({where})")
    return EXIT_OK if not failed else EXIT_CHECK_FAILED


# -- tinyllm report / info ---------------------------------------------------------------------------------

def cmd_report(args) -> int:
    from .report import write_report

    path, size, notes = write_report(args.out)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"wrote {path} ({size / 1e6:.1f} MB, self-contained: open it in a browser, no network needed)")
    return EXIT_OK


def cmd_info(args) -> int:
    from .report import run_info

    for line in run_info(args.out):
        print(line)
    return EXIT_OK


# -- the parser -----------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """A mistake in the flags is one line, the error and where the options are (not the whole usage)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message}; see {self.prog} --help\n")


def make_parser() -> argparse.ArgumentParser:
    from .version import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    p = Parser(
        prog="tinyllm", formatter_class=fmt,
        description="Train and sample tiny language models on NumPy (CPU) or CuPy (CUDA).",
        epilog="run `tinyllm COMMAND --help` for a command's options")
    p.add_argument("--version", action="version", version=f"tinyllm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    t = sub.add_parser("train", help="train a model (default: a small GPT on the embedded names)",
                       description="Train a model and save checkpoints, a log and a loss plot in --out.",
                       epilog=TRAIN_EXAMPLES, formatter_class=fmt)
    _add_train_args(t)
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("sample", help="generate text from a trained model",
                       description="Generate samples from the checkpoint in --out, on any device.",
                       epilog="examples:\n  tinyllm sample --num-samples 10 --temperature 0.8\n"
                              "  tinyllm sample --out shakespeare --prompt 'ROMEO:' --max-new-tokens 300 --top-p 0.9\n"
                              "  tinyllm sample --init-from gpt2 --prompt 'Hello, I am' --temperature 0 "
                              "--max-new-tokens 50",
                       formatter_class=fmt)
    _add_sample_args(s)
    s.set_defaults(func=cmd_sample)
    e = sub.add_parser("export", help="write a trained GPT as a Hugging Face GPT-2 directory",
                       description="Write the GPT in --out as a directory that transformers' "
                                   "GPT2LMHeadModel.from_pretrained(DEST) loads: config.json, model.safetensors, and "
                                   "tokenizer.json + tokenizer_config.json when the run used --tokenizer bpe. "
                                   "Needs no torch. DEST must not exist or be empty.",
                       epilog="example:\n  tinyllm export --out shakespeare shakespeare-hf\n"
                              "  python -c \"from transformers import GPT2LMHeadModel as M; "
                              "M.from_pretrained('shakespeare-hf')\"",
                       formatter_class=fmt)
    e.add_argument("--out", default=OUT, metavar="RUN", help="training run directory with a checkpoint (default %(default)s)")
    e.add_argument("dest", metavar="DEST", help="directory to create")
    e.set_defaults(func=cmd_export)
    add_prepare_command(sub, fmt)
    g = sub.add_parser("gradcheck", help="check every op's backward against numerical gradients",
                       description="For each op: the analytic gradient (backward) at its worst element next to "
                                   "the numerical one (central differences in float64), and the error.",
                       formatter_class=fmt)
    g.add_argument("--device", default="cpu", help=f"{DEVICES} (default %(default)s)")
    g.add_argument("--op", action="append", metavar="NAME", help="only this op (repeatable)")
    g.set_defaults(func=cmd_gradcheck)
    r = sub.add_parser("report", help="write RUN/report.html: a run's learning, health, attention and samples",
                       description="Write one self-contained page (charts and data inside; opens offline) for the "
                                   "run in --out: learning curves, network health, attention maps, each token's "
                                   "surprise, samples at each evaluation and the model. Needs: pip install "
                                   "'tinyllm[report]'. Writes only RUN/report.html.")
    r.add_argument("--out", default=OUT, metavar="RUN", help="training run directory (default %(default)s)")
    r.set_defaults(func=cmd_report)
    i = sub.add_parser("info", help="a run in a few lines: step, val loss, settings, files, what to run next")
    i.add_argument("--out", default=OUT, metavar="RUN", help="training run directory (default %(default)s)")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return run_guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
