"""`tinyllm prepare`'s flags (tinyllm/cli.py adds the command; prepare.py does the work)."""
from __future__ import annotations

import argparse

from ..errors import EXIT_OK, UsageError
from .bpe import DEFAULT_VOCAB, check_vocab_size
from .sources import DOCUMENTS

EXAMPLES = """\
examples:
  tinyllm prepare books/ --out books-data                       # every *.txt under books/, characters
  tinyllm prepare books/ --glob '*.md' --tokenizer bpe --vocab-size 4096 --out books-data
  tinyllm prepare web-*.jsonl.gz --field text --out web --tokenizer bpe
  tinyllm prepare train-0000.parquet --column text --tokenizer-from gpt2 --out hf-data
  tinyllm train --data books-data --block-size 256              # trains from the shards by memory map

Exit codes: 0 ok, 2 bad input (one line; no DIR left behind), 3 the disk filled up, 130 Ctrl-C, 143 SIGTERM (both leave no DIR).
"""


def add_prepare_command(sub, fmt) -> None:
    p = sub.add_parser("prepare", help="tokenize text, folders, JSONL or Parquet once into token shards",
                       description="Tokenize the sources into DIR: uint16/uint32 token shards and manifest.json, "
                                   "for `tinyllm train --data DIR` (docs/data.md).",
                       epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("sources", nargs="+", metavar="SRC", help="text files, folders, .jsonl / .jsonl.gz, .parquet")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to create (must not exist)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier prepare in DIR")
    p.add_argument("--glob", default="*.txt", help="files of a folder to read, recursively (default %(default)s)")
    p.add_argument("--field", default="text", help="the JSONL field holding the text (default %(default)s)")
    p.add_argument("--column", default="text", help="the Parquet column holding the text (default %(default)s)")
    p.add_argument("--documents", choices=DOCUMENTS, default=None,
                   help="what of a text file is one document: the file, each paragraph, each line "
                        "(default: paragraph for a single text file, else file)")
    p.add_argument("--tokenizer", choices=("char", "bpe"), default="char", help="default %(default)s")
    p.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB, help="BPE vocabulary (default %(default)s)")
    p.add_argument("--tokenizer-from", metavar="RUN_OR_HF_DIR", default=None,
                   help="reuse a tinyllm run's tokenizer or a Hugging Face directory's (e.g. GPT-2's)")
    p.add_argument("--sample-mb", type=float, default=20.0,
                   help="MB of training documents a BPE is trained on (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of documents for val (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the split's hash key (default %(default)s)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens a shard (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import PrepareOptions, prepare

    if not 0 < args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if args.shard_tokens < 1 or args.sample_mb <= 0:
        raise UsageError("--shard-tokens and --sample-mb must be positive")
    if args.tokenizer == "bpe":
        check_vocab_size(args.vocab_size)
    opts = PrepareOptions(out=args.out, glob=args.glob, field=args.field, column=args.column,
                          documents=args.documents, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                          tokenizer_from=args.tokenizer_from, val_fraction=args.val_fraction, seed=args.seed,
                          shard_tokens=args.shard_tokens, sample_bytes=int(args.sample_mb * 1e6),
                          overwrite=args.overwrite, progress=not args.no_progress)
    prepare(args.sources, opts)
    return EXIT_OK
