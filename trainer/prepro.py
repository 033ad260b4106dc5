"""Tokenize text into train and validation shards for train.py.

    python trainer/prepro.py tinyshakespeare           # download tiny shakespeare (or use a local copy)
    python trainer/prepro.py --input notes.txt         # any local text -> data/notes/notes_{val,train}.bin

The text is split into sections on blank lines; each section is prefixed with <|endoftext|> and
tokenized with GPT-2's tokenizer (as llm.c's prepro_tinyshakespeare.py does). The first
--val-tokens tokens (32,768) are the validation split, the rest the training split.
"""
from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import from the project root, not from trainer/
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from harness.errors import UserError
from harness.atomic import atomic_write
from trainer.config import EOT_TOKEN, ROOT
from trainer.data import write_shard

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHARED_TINYSHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
DATA_DIR = ROOT / "data"


def tokenize(text: str, enc) -> list[int]:
    """<|endoftext|> before each blank-line-separated section; the sections keep their blank lines."""
    sections = text.split("\n\n")
    tokens = []
    for i, section in enumerate(sections):
        tokens.append(EOT_TOKEN)
        tokens.extend(enc.encode_ordinary(section if i == len(sections) - 1 else section + "\n\n"))
    return tokens


def tinyshakespeare_text(out_dir: Path, log=print) -> str:
    """The tiny shakespeare text: a cached download, a fresh download, or the shared local copy."""
    cached = out_dir / "input.txt"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    try:
        log(f"downloading {TINYSHAKESPEARE_URL}")
        with urllib.request.urlopen(TINYSHAKESPEARE_URL, timeout=30) as response:
            text = response.read().decode("utf-8")
        with atomic_write(cached, "w") as f:
            f.write(text)
        return text
    except OSError as e:
        if SHARED_TINYSHAKESPEARE.is_file():
            log(f"download failed ({e}); using {SHARED_TINYSHAKESPEARE}")
            return SHARED_TINYSHAKESPEARE.read_text(encoding="utf-8")
        raise UserError(f"cannot download tiny shakespeare ({e}); give a local copy with --input FILE.txt") from None


def prepro(text: str, out_dir: Path, prefix: str, enc, val_tokens: int = 32768, log=print) -> tuple[Path, Path]:
    tokens = tokenize(text, enc)
    if len(tokens) <= val_tokens:
        raise UserError(f"the text has {len(tokens)} tokens, not more than --val-tokens {val_tokens}")
    val_path, train_path = out_dir / f"{prefix}_val.bin", out_dir / f"{prefix}_train.bin"
    write_shard(val_path, tokens[:val_tokens])
    write_shard(train_path, tokens[val_tokens:])
    log(f"wrote {val_tokens:,} tokens to {val_path}")
    log(f"wrote {len(tokens) - val_tokens:,} tokens to {train_path}")
    return val_path, train_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainer/prepro.py", description=__doc__.split("\n\n")[0],
                                epilog="examples: python trainer/prepro.py tinyshakespeare | "
                                       "python trainer/prepro.py --input notes.txt --vocab gpt2.tiktoken")
    p.add_argument("dataset", nargs="?", choices=["tinyshakespeare"], help="a known dataset to download")
    p.add_argument("--input", type=Path, metavar="FILE.txt",
                   help="tokenize this local text (with tinyshakespeare: the local copy to use instead of downloading)")
    p.add_argument("--name", help="with --input alone: the dataset's name (default: the file's stem)")
    p.add_argument("--out-dir", type=Path, help="where the .bin files go (default: data/NAME under the project root)")
    p.add_argument("--vocab", help="local GPT-2 merge-ranks file (gpt2.tiktoken) when tiktoken cannot download")
    p.add_argument("--val-tokens", type=int, default=32768, help="tokens in the validation split (default 32768)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from trainer.tokenizer import get_encoding

        if args.dataset is None and args.input is None:
            raise UserError("name a dataset (tinyshakespeare) or give --input FILE.txt")
        if args.input is not None and not args.input.is_file():
            raise UserError(f"no input file at {args.input}")
        if args.dataset == "tinyshakespeare":
            name, prefix = "tinyshakespeare", "tiny_shakespeare"
        else:
            name = prefix = args.name or args.input.stem
        out_dir = args.out_dir or DATA_DIR / name
        enc = get_encoding(args.vocab)
        if args.input is not None:
            text = args.input.read_text(encoding="utf-8")
        else:
            text = tinyshakespeare_text(out_dir)
        prepro(text, out_dir, prefix, enc, args.val_tokens)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
