"""Token shards in llm.c's format and the loader that cuts them into (B, T) batches.

A shard: a header of 256 int32 (magic 20240520, version 1, number of tokens, then zeros), then the
tokens as uint16 (GPT-2's 50,257 ids fit).
"""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError
from harness.atomic import atomic_write
from trainer.config import resolve_path

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256


def write_shard(path, tokens) -> None:
    """Write token ids (each < 65536) as a shard, atomically."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2 ** 16):
        raise ValueError("token ids must fit in uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = [SHARD_MAGIC, SHARD_VERSION, tokens.size]
    with atomic_write(path) as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


def read_shard(path) -> np.ndarray:
    """The tokens of a shard, as a read-only uint16 memory map."""
    path = Path(path)
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header.size < 3 or header[0] != SHARD_MAGIC:
        raise UserError(f"{path} is not a token shard (bad magic number); make shards with trainer/prepro.py")
    if header[1] != SHARD_VERSION:
        raise UserError(f"{path}: shard version {header[1]} is not supported (only {SHARD_VERSION})")
    ntok = int(header[2])
    expected = HEADER_INTS * 4 + 2 * ntok
    if path.stat().st_size != expected:
        raise UserError(f"{path}: {path.stat().st_size} bytes, but its header says {ntok} tokens ({expected} bytes)")
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_INTS * 4, shape=(ntok,))


def find_shards(pattern: str) -> list[Path]:
    """The shards a path or glob names, sorted; a clear error (with the command that makes them) if none."""
    resolved = resolve_path(pattern)
    files = sorted(Path(p) for p in glob.glob(str(resolved)))
    if not files:
        raise UserError(f"no data at {pattern}: make it with `python trainer/prepro.py tinyshakespeare` "
                        f"(or `python trainer/prepro.py --input FILE.txt` for your own text)")
    return files


class DataLoader:
    """Reads shards in order and yields (inputs, targets) batches of shape (B, T), targets shifted by one.

    Each batch reads B*T+1 consecutive tokens and the position advances by B*T. A shard too short
    for the next batch is left for the next one; after the last shard it starts over. The position
    (shard index, token offset) is what `state()` returns and `load_state()` restores.
    """

    def __init__(self, pattern: str, B: int, T: int):
        self.files = find_shards(pattern)
        self.B, self.T = B, T
        self.shards = [read_shard(f) for f in self.files]
        for f, shard in zip(self.files, self.shards):
            if len(shard) < B * T + 1:
                raise UserError(f"{f} has {len(shard)} tokens, fewer than one batch of B*T+1 = {B * T + 1}; "
                                f"use a smaller --batch-size or --seq-len")
        self.reset()

    @property
    def num_batches(self) -> int:
        """Batches in one pass over all shards."""
        return sum((len(s) - 1) // (self.B * self.T) for s in self.shards)

    @property
    def num_tokens(self) -> int:
        return sum(len(s) for s in self.shards)

    def reset(self) -> None:
        self.shard, self.position = 0, 0

    def state(self) -> dict:
        return {"shard": self.shard, "position": self.position, "files": [str(f) for f in self.files]}

    def load_state(self, state: dict) -> None:
        if not 0 <= state["shard"] < len(self.shards):
            raise UserError(f"data loader state names shard {state['shard']}, but there are {len(self.shards)}")
        self.shard, self.position = state["shard"], state["position"]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.B * self.T
        if self.position + n + 1 > len(self.shards[self.shard]):
            self.shard = (self.shard + 1) % len(self.shards)
            self.position = 0
        buf = torch.from_numpy(self.shards[self.shard][self.position:self.position + n + 1].astype(np.int64))
        self.position += n
        return buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)
