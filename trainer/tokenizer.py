"""GPT-2's tokenizer (tiktoken), online or from a local merge-ranks file.

Where to get it, in order: the `vocab` argument (--vocab), $WORKBENCH_GPT2_VOCAB, tiktoken's own
download (cached by tiktoken), then ../shared/data/gpt2.tiktoken beside the project. A local file is
in tiktoken's format (base64 token and rank per line: the r50k_base file).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UserError
from trainer.config import EOT_TOKEN, ROOT

if TYPE_CHECKING:  # imported lazily below: tiktoken loads only when text is encoded or decoded
    import tiktoken

ENV_VAR = "WORKBENCH_GPT2_VOCAB"
SHARED_VOCAB = ROOT.parent / "shared" / "data" / "gpt2.tiktoken"
# GPT-2's pre-tokenisation: contractions, letter runs, digit runs, other symbols, whitespace
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def encoding_from_file(path) -> "tiktoken.Encoding":
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"no GPT-2 vocabulary file at {path}")
    try:
        ranks = load_tiktoken_bpe(str(path))
    except Exception as e:
        raise UserError(f"{path} is not a tiktoken merge-ranks file ({e})") from None
    if len(ranks) != EOT_TOKEN:
        raise UserError(f"{path} has {len(ranks)} ranks; GPT-2's file has {EOT_TOKEN}")
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT_TOKEN})


def get_encoding(vocab: str | None = None) -> "tiktoken.Encoding":
    """GPT-2's encoding; see the module docstring for where it comes from."""
    local = vocab or os.environ.get(ENV_VAR)
    if local:
        return encoding_from_file(local)
    import tiktoken

    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as e:  # no network (and nothing in tiktoken's cache)
        if SHARED_VOCAB.is_file():
            return encoding_from_file(SHARED_VOCAB)
        raise UserError(f"cannot load GPT-2's tokenizer: tiktoken's download failed ({type(e).__name__}) and no "
                        f"local file was given; pass --vocab PATH or set {ENV_VAR} to a gpt2.tiktoken "
                        f"(r50k_base) merge-ranks file") from None
