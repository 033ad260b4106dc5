"""Fixtures for the trainer's tests: small synthetic token shards, the shared offline data when present."""
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.config import ROOT
from trainer.data import write_shard

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """These models are tiny: one thread is as fast, and immune to a busy machine (spinning OpenMP
    threads on oversubscribed cores make a 50 ms test take seconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> dict:
    """Train and val shards of an easy-to-learn sequence (a cycle of 50 token ids, with noise)."""
    d = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    cycle = np.arange(1000, 1050)
    train = np.tile(cycle, 400)
    train[rng.random(train.size) < 0.05] = 7
    val = np.tile(cycle, 20)
    write_shard(d / "toy_train.bin", train)
    write_shard(d / "toy_val.bin", val)
    return {"train": str(d / "toy_train.bin"), "val": str(d / "toy_val.bin"), "dir": d}


@pytest.fixture(scope="session")
def shared_vocab() -> Path:
    path = SHARED_DATA / "gpt2.tiktoken"
    if not path.is_file():
        pytest.skip(f"needs the offline GPT-2 vocabulary at {path} (absent here)")
    return path


@pytest.fixture(scope="session")
def shared_text() -> Path:
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"needs the offline tiny shakespeare text at {path} (absent here)")
    return path


def tiny_args(shards: dict, out_dir, *extra, model: str | None = "d2") -> list[str]:
    """train.py flags for a fast CPU run on the synthetic shards (no samples: no tokenizer needed)."""
    return ["--device", "cpu", *(["--model", model] if model else []), "--batch-size", "2", "--seq-len", "32",
            "--train-data", shards["train"], "--val-data", shards["val"], "--val-every", "0",
            "--sample-every", "0", "--learning-rate", "3e-3", "--warmup-steps", "2",
            "--out-dir", str(out_dir), *extra]
