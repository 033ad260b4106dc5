"""Run checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint after N steps is two files in the run's folder, each written atomically:

    model_0000000N.bin   the fp32 master weights in llm.c's format (llm.c reads it too)
    state_0000000N.pt    torch.save of a dict: AdamW's m and v (flat fp32), the step count, the
                         training data loader's position, the RNG states, the TrainConfig and the
                         model's shape

The state file is written second, so a state file always has its model file beside it.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness.errors import UserError
from harness.atomic import atomic_write
from trainer.weights import read_llmc, write_llmc

STATE_FORMAT = "cuda-workbench trainer state"
STATE_VERSION = 1


@dataclass
class Checkpoint:
    step: int  # optimizer steps done when it was saved
    model_path: Path
    state_path: Path


def save_checkpoint(out_dir, step: int, engine, loader, cfg, keep: int = 0) -> Checkpoint:
    """Save after `step` steps; then delete all but the newest `keep` checkpoints (0: keep all)."""
    out_dir = Path(out_dir)
    ckpt = Checkpoint(step, out_dir / f"model_{step:08d}.bin", out_dir / f"state_{step:08d}.pt")
    write_llmc(ckpt.model_path, engine.get_parameters(), engine.model)
    state = {
        "format": STATE_FORMAT, "version": STATE_VERSION, "step": step,
        "optimizer": engine.get_optimizer_state(),
        "train_loader": loader.state(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "config": asdict(cfg),
        "model": asdict(engine.model),
    }
    with atomic_write(ckpt.state_path) as f:
        torch.save(state, f)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            old.state_path.unlink(missing_ok=True)  # state first: a model file alone is not a checkpoint
            old.model_path.unlink(missing_ok=True)
    return ckpt


def list_checkpoints(run_dir) -> list[Checkpoint]:
    """Complete checkpoints in a folder, oldest first."""
    found = []
    for state_path in Path(run_dir).glob("state_*.pt"):
        m = re.fullmatch(r"state_(\d+)\.pt", state_path.name)
        model_path = state_path.with_name(f"model_{m.group(1)}.bin") if m else None
        if m and model_path.is_file():
            found.append(Checkpoint(int(m.group(1)), model_path, state_path))
    return sorted(found, key=lambda c: c.step)


def load_checkpoint(run_dir):
    """(Checkpoint, model config, flat fp32 parameters, state dict) of the newest checkpoint in run_dir."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: no such folder")
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise UserError(f"--resume {run_dir}: no checkpoint there (model_*.bin with its state_*.pt)")
    ckpt = checkpoints[-1]
    try:
        state = torch.load(ckpt.state_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{ckpt.state_path} cannot be read ({e})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{ckpt.state_path} is not a trainer state file")
    if state.get("version") != STATE_VERSION:
        raise UserError(f"{ckpt.state_path}: state version {state.get('version')}, this trainer reads {STATE_VERSION}")
    model_cfg, flat = read_llmc(ckpt.model_path)
    return ckpt, model_cfg, flat, state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["rng"]["torch"])
    cuda = state["rng"]["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
