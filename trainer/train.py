"""Train GPT-2: the workbench's kernels (--kernels FILE.yaml) or PyTorch (the CPU path, an fp32 GPU fallback).

    python trainer/prepro.py tinyshakespeare                       # data first
    python trainer/train.py --device cpu --model d2 --batch-size 4 --seq-len 64 --max-steps 50
    python trainer/train.py --model d12 --kernels best.yaml        # on a GPU, the chosen kernel variants
    python trainer/train.py --resume out                            # continue the run saved in out/

Every TrainConfig field (trainer/config.py) is a flag: `batch_size` is --batch-size. The loop is
llm.c's: validation and a sample every so often, then a step: zero the gradients, forward and
backward over the micro-batches that make up --total-batch-size, clip by the global norm, AdamW
with warm-up and cosine decay. Checkpoints are written at the end, every --checkpoint-every steps
and on Ctrl-C.
"""
from __future__ import annotations

import argparse
import inspect
import math
import re
import signal
import sys
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import from the project root, not from trainer/
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch

from harness.errors import UserError
from trainer.checkpoint import load_checkpoint, restore_rng, save_checkpoint
from trainer.config import EOT_TOKEN, MODELS, TrainConfig, resolve_path
from trainer.data import DataLoader
from trainer.engine import Engine, TorchEngine
from trainer.logger import Logger, peak_flops, run_summary
from trainer.model import flops_per_token, init_parameters, num_parameters
from trainer.weights import load_weights

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
CHOICES = {"model": list(MODELS), "device": ["auto", "cpu", "cuda"], "dtype": ["auto", "fp32", "bf16"]}


class TrainingInterrupted(Exception):
    """Ctrl-C: a checkpoint was saved (the message says where) and the run stopped."""


# --- configuration --------------------------------------------------------------------------------

def field_help() -> dict[str, str]:
    """Each TrainConfig field's comment in config.py, used as its flag's help."""
    source = inspect.getsource(TrainConfig)
    return dict(re.findall(r"^    (\w+): [^=\n]+=[^#\n]+#\s*(.+)$", source, re.M))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainer/train.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        argument_default=argparse.SUPPRESS)  # only the flags given appear: they override a resumed config
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run whose checkpoints are in DIR (its newest); flags given override its config")
    helps, defaults = field_help(), TrainConfig()
    for f in fields(TrainConfig):
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        help_text = f"{helps.get(f.name, '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        elif f.name in CHOICES:
            parser.add_argument(flag, dest=f.name, choices=CHOICES[f.name], help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(type(default), "PATH")
            parser.add_argument(flag, dest=f.name, type=type(default), metavar=metavar, help=help_text)
    return parser


def parse_args(argv=None):
    """(TrainConfig, loaded checkpoint or None) from the command line."""
    given = vars(build_parser().parse_args(argv))
    resume = given.pop("resume", None)
    if "init" in given and "model" in given:
        raise UserError("give --model or --init, not both: with --init the model's shape comes from the weight file")
    if resume is None:
        return replace(TrainConfig(), **given), None
    loaded = load_checkpoint(resume)
    saved = loaded[3]["config"]
    unknown = set(saved) - set(TrainConfig.field_names())
    if unknown:
        raise UserError(f"{loaded[0].state_path}: unknown config keys {sorted(unknown)} (written by a newer trainer?)")
    base = replace(TrainConfig(**saved), out_dir=str(resume), stop_at=-1, profile=False)
    if "model" in given and given["model"] != base.model:
        raise UserError(f"--model {given['model']}: the run in {resume} trains {base.model or 'a model from --init'}; "
                        f"the model cannot change")
    return replace(base, **given), loaded


def resolve_device(cfg: TrainConfig) -> tuple[str, str]:
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {cfg.device}: choose cpu, cuda or auto")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no usable CUDA GPU here; train on the CPU with --device cpu --model d2")
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bf16" if device == "cuda" else "fp32")
    if dtype not in ("fp32", "bf16"):
        raise UserError(f"--dtype {cfg.dtype}: choose fp32, bf16 or auto")
    return device, dtype


def check_settings(cfg: TrainConfig) -> None:
    """The numeric settings that have a valid range (batch sizes are checked where they are used)."""
    rules = [("learning_rate", cfg.learning_rate >= 0), ("warmup_steps", cfg.warmup_steps >= 0),
             ("final_lr_frac", 0 <= cfg.final_lr_frac <= 1), ("weight_decay", cfg.weight_decay >= 0),
             ("beta1", 0 <= cfg.beta1 < 1), ("beta2", 0 <= cfg.beta2 < 1), ("eps", cfg.eps > 0),
             ("grad_clip", cfg.grad_clip >= 0), ("val_steps", cfg.val_steps >= 1 or cfg.val_every <= 0),
             ("sample_tokens", cfg.sample_tokens >= 1 or cfg.sample_every <= 0), ("top_k", cfg.top_k >= 1),
             ("temperature", cfg.temperature > 0), ("keep_checkpoints", cfg.keep_checkpoints >= 0)]
    for name, ok in rules:
        if not ok:
            raise UserError(f"--{name.replace('_', '-')} {getattr(cfg, name)} is out of range")


def make_engine(model, flat, cfg: TrainConfig) -> Engine:
    if not cfg.kernels:
        return TorchEngine(model, flat, cfg.device, cfg.dtype)
    if not Path(cfg.kernels).is_file():
        raise UserError(f"no kernels file at {cfg.kernels}: write it on a GPU with `python bench.py --select "
                        f"{cfg.kernels}` (after `make gpu-bench`), or `... --simplest` for every layer's first variant")
    if cfg.device != "cuda":
        raise UserError("--kernels needs a CUDA GPU (on a CPU the kernels would run on the test emulator, far too "
                        "slowly for a model); train on the CPU without --kernels: --device cpu --model d2")
    try:
        from trainer.kernel_engine import KernelEngine
    except ImportError as e:
        raise UserError(f"the kernel path is not available ({e}); train with the PyTorch engine: "
                        f"--device cpu (or leave out --kernels on a GPU)") from None
    return KernelEngine(model, flat, cfg)


# --- the pieces of the loop -----------------------------------------------------------------------

def get_lr(step: int, cfg: TrainConfig, max_steps: int) -> float:
    """Learning rate of step `step` (0-based): linear warm-up, then cosine decay to lr * final_lr_frac."""
    lr = cfg.learning_rate
    if step < cfg.warmup_steps:
        return lr * (step + 1) / cfg.warmup_steps
    if max_steps <= cfg.warmup_steps:
        return lr
    progress = (step - cfg.warmup_steps) / (max_steps - cfg.warmup_steps)  # 0 .. 1
    min_lr = lr * cfg.final_lr_frac
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def train_step(engine: Engine, loader: DataLoader, cfg: TrainConfig, step: int, max_steps: int,
               grad_accum: int) -> tuple[float, float, float]:
    """One optimizer step over grad_accum micro-batches; returns (mean loss, gradient norm, lr)."""
    engine.zero_grad()
    losses = []  # device tensors: reading each one would stall the GPU between micro-batches
    for _ in range(grad_accum):
        x, y = loader.next_batch()
        losses.append(engine.forward_backward(x, y, 1.0 / grad_accum))
    norm = engine.grad_norm()  # the step's one host sync: clipping needs the norm on the host
    loss = torch.stack(losses).mean().item()
    grad_scale = cfg.grad_clip / norm if 0 < cfg.grad_clip < norm else 1.0  # clip the global norm
    lr = get_lr(step, cfg, max_steps)
    engine.adamw_step(lr, step + 1, grad_scale, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay)
    return loss, norm, lr


def validate(engine: Engine, loader: DataLoader, max_batches: int) -> float:
    """Mean loss over the first max_batches batches of the validation data (always the same ones)."""
    loader.reset()
    n = min(max_batches, loader.num_batches)
    return sum(engine.evaluate(*loader.next_batch()) for _ in range(n)) / n


def sample(engine: Engine, enc, cfg: TrainConfig, seed: int) -> str:
    """Generate cfg.sample_tokens tokens after <|endoftext|>: top-k sampling, seeded."""
    g = torch.Generator().manual_seed(seed)
    tokens = [EOT_TOKEN]
    for _ in range(cfg.sample_tokens):
        context = torch.tensor([tokens[-cfg.seq_len:]])
        logits = engine.logits(context)[0, -1] / cfg.temperature
        top_values, top_ids = torch.topk(logits, min(cfg.top_k, logits.numel()))
        choice = torch.multinomial(torch.softmax(top_values, dim=-1), 1, generator=g)
        tokens.append(int(top_ids[choice]))
    return enc.decode(tokens[1:])


def timed_steps(history: list[dict]) -> list[tuple[int, float]]:
    """(step, ms) of every training step in a run's history (validations have no "ms")."""
    return [(h["step"], h["ms"]) for h in history if "ms" in h]


def print_profile(log: Logger, rows, top: int = 15) -> None:
    if rows is None:
        log.info("profile: this engine does not time its ops (--profile not supported)")
        return
    total = sum(ms for _, ms, _ in rows) or 1.0
    log.info(f"profile: one forward + backward, {total:.1f} ms in {len(rows)} ops; the {min(top, len(rows))} slowest:")
    for name, ms, calls in rows[:top]:
        log.info(f"  {name:<48} {ms:9.2f} ms {100 * ms / total:5.1f}%  {calls:5d} calls")


class _SigintFlag:
    """First Ctrl-C: ask the loop to checkpoint and stop after the current step. Second: stop now."""

    def __init__(self):
        self.set = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


# --- the run --------------------------------------------------------------------------------------

def run(cfg: TrainConfig, loaded=None, quiet: bool = False) -> list[dict]:
    """Train; returns the history: {"step", "loss", "norm", "lr", "ms"} per step and {"step", "val_loss"}
    per validation ("step" counts the steps done). loaded: a checkpoint from load_checkpoint to resume."""
    # Everything that can fail on bad input happens before anything is written.
    device, dtype = resolve_device(cfg)
    cfg = replace(cfg, device=device, dtype=dtype)
    if cfg.kernels:
        cfg = replace(cfg, kernels=str(resolve_path(cfg.kernels)))
    start_step, state = 0, None
    if loaded is not None:
        ckpt, model, flat, state = loaded
        start_step = state["step"]
        origin = f"resumed from {ckpt.model_path} after {start_step} steps"
    elif cfg.init:
        model, flat = load_weights(resolve_path(cfg.init))
        cfg = replace(cfg, model="")  # the shape came from the file, not a preset
        origin = f"weights from {cfg.init}"
    else:
        if cfg.model not in MODELS:
            raise UserError(f"--model {cfg.model}: unknown; choose one of {', '.join(MODELS)}")
        model, flat = MODELS[cfg.model], init_parameters(MODELS[cfg.model], cfg.seed)
        origin = f"random init (seed {cfg.seed})"
    B, T = cfg.batch_size, cfg.seq_len
    if B < 1 or not 1 <= T <= model.max_seq_len:
        raise UserError(f"--batch-size {B} --seq-len {T}: need B >= 1 and 1 <= T <= {model.max_seq_len}")
    total = cfg.total_batch_size if cfg.total_batch_size != -1 else B * T
    if total <= 0 or total % (B * T):
        raise UserError(f"--total-batch-size {total} must be a positive multiple of B*T = {B}*{T} = {B * T}")
    grad_accum = total // (B * T)
    check_settings(cfg)
    train_loader = DataLoader(cfg.train_data, B, T)
    val_loader = DataLoader(cfg.val_data, B, T) if cfg.val_every > 0 else None
    enc = None
    if cfg.sample_every > 0:
        from trainer.tokenizer import get_encoding

        enc = get_encoding(cfg.vocab)
    max_steps = cfg.max_steps if cfg.max_steps > 0 else max(1, train_loader.num_tokens // total)
    engine = make_engine(model, flat, cfg)
    if state is not None:
        engine.set_optimizer_state(state["optimizer"])
        train_loader.load_state(state["train_loader"])
        restore_rng(state)

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Logger(out_dir / "train.log", total_steps=max_steps, start_step=start_step, quiet=quiet)
    history = []
    try:
        log.info(f"model: L={model.num_layers} C={model.channels} NH={model.num_heads} maxT={model.max_seq_len} "
                 f"V={model.vocab_size} Vp={model.padded_vocab_size}, {num_parameters(model):,} parameters, {origin}")
        log.info(f"engine: {engine.name} | B={B} T={T} | {total:,} tokens per step = {grad_accum} micro-batches | "
                 f"{max_steps} steps | train data {train_loader.num_tokens:,} tokens in {len(train_loader.files)} file(s)")
        for line in engine.describe_kernels():
            log.info(f"  kernel {line}")
        peak = peak_flops(engine.device, cfg.peak_tflops)
        log.info("MFU: n/a (no GPU peak known)" if peak is None else f"MFU against a peak of {peak / 1e12:.0f} TFLOP/s")
        if cfg.profile:
            position = train_loader.state()
            x, y = train_loader.next_batch()
            train_loader.load_state(position)  # profiling must not move the data
            print_profile(log, engine.profile(x, y))
        flops_per_step = flops_per_token(model, T) * total

        with _SigintFlag() as sigint:
            for step in range(start_step, max_steps + 1):
                last = step == max_steps
                if val_loader is not None and (step % cfg.val_every == 0 or last):
                    val_loss = validate(engine, val_loader, cfg.val_steps)
                    history.append({"step": step, "val_loss": val_loss})
                    log.info(f"step {step}: val loss {val_loss:.6f}")
                if enc is not None and (step % cfg.sample_every == 0 or last):
                    log.info(f"step {step}: sample:\n---\n{sample(engine, enc, cfg, cfg.seed + step)}\n---")
                if last:
                    break

                t0 = time.perf_counter()
                loss, norm, lr = train_step(engine, train_loader, cfg, step, max_steps, grad_accum)
                engine.synchronize()
                dt = time.perf_counter() - t0

                done = step + 1
                mfu = flops_per_step / dt / peak if peak else None
                log.step(done, max_steps, loss, norm, lr, 1000 * dt, total / dt, mfu)
                history.append({"step": done, "loss": loss, "norm": norm, "lr": lr, "ms": 1000 * dt})
                if sigint.set or done == cfg.stop_at:
                    ckpt = save_checkpoint(out_dir, done, engine, train_loader, cfg, cfg.keep_checkpoints)
                    why = "interrupted" if sigint.set else f"stopped at step {done} (--stop-at)"
                    log.info(f"{why}: saved {ckpt.model_path}; continue with: python trainer/train.py --resume {out_dir}")
                    if sigint.set:
                        raise TrainingInterrupted(f"interrupted after step {done}; checkpoint in {out_dir}")
                    log.info(run_summary(timed_steps(history), total, flops_per_step, peak, engine.device))
                    return history
                if cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0 and done < max_steps:
                    ckpt = save_checkpoint(out_dir, done, engine, train_loader, cfg, cfg.keep_checkpoints)
                    log.info(f"saved {ckpt.model_path}")

        log.info(run_summary(timed_steps(history), total, flops_per_step, peak, engine.device))
        ckpt = save_checkpoint(out_dir, max_steps, engine, train_loader, cfg, cfg.keep_checkpoints)
        log.info(f"saved {ckpt.model_path} (llm.c format) and {ckpt.state_path.name}")
    finally:
        log.close()
    return history


def main(argv=None) -> int:
    try:
        cfg, loaded = parse_args(argv)
        run(cfg, loaded)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before the loop started, or a second Ctrl-C: nothing (more) saved
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
