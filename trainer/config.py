"""The two configurations: the model's shape (GPTConfig) and the training run's settings (TrainConfig).

Every TrainConfig field is a command-line flag of train.py (field `batch_size` is `--batch-size`),
and the whole TrainConfig is saved in each checkpoint, so `--resume DIR` can continue a run with
nothing else on the command line.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root (where bench.py is)

GPT2_VOCAB_SIZE = 50257  # GPT-2's tokenizer: 50,256 merges + <|endoftext|>
GPT2_PADDED_VOCAB_SIZE = 50304  # rounded up to a multiple of 128 so the lm_head matmul tiles evenly
GPT2_MAX_SEQ_LEN = 1024
EOT_TOKEN = 50256  # <|endoftext|>


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT-2 model: what llm.c's checkpoint header stores."""

    num_layers: int  # L: transformer blocks
    num_heads: int  # NH: attention heads; channels must be a multiple of it
    channels: int  # C: width of the residual stream
    max_seq_len: int = GPT2_MAX_SEQ_LEN  # maxT: rows of the position embedding wpe
    vocab_size: int = GPT2_VOCAB_SIZE  # V: real tokens; the loss is over these logits only
    padded_vocab_size: int = GPT2_PADDED_VOCAB_SIZE  # Vp: rows of wte; rows V..Vp-1 stay zero

    def __post_init__(self):
        if self.channels % self.num_heads:
            raise ValueError(f"channels ({self.channels}) must be a multiple of num_heads ({self.num_heads})")
        if self.padded_vocab_size < self.vocab_size:
            raise ValueError(f"padded_vocab_size ({self.padded_vocab_size}) < vocab_size ({self.vocab_size})")


# --model presets: dN is N layers. d12..d48 are GPT-2 small, medium, large and XL (124M..1.5B
# parameters); d2, d4 and d6 are small models for CPUs (most of their parameters are the embedding).
MODELS = {
    "d2": GPTConfig(num_layers=2, num_heads=4, channels=64),  # 3.4M parameters, CPU tests
    "d4": GPTConfig(num_layers=4, num_heads=4, channels=128),  # 7.4M, CPU demos
    "d6": GPTConfig(num_layers=6, num_heads=6, channels=384),  # 30M, a patient CPU or any GPU
    "d12": GPTConfig(num_layers=12, num_heads=12, channels=768),  # GPT-2 small, 124M
    "d24": GPTConfig(num_layers=24, num_heads=16, channels=1024),  # GPT-2 medium, 350M
    "d36": GPTConfig(num_layers=36, num_heads=20, channels=1280),  # GPT-2 large, 774M
    "d48": GPTConfig(num_layers=48, num_heads=25, channels=1600),  # GPT-2 XL, 1558M
}

# GPT-2's head counts by width, for weight files that do not say (Hugging Face state dicts).
GPT2_HEADS_BY_CHANNELS = {768: 12, 1024: 16, 1280: 20, 1600: 25}


@dataclass
class TrainConfig:
    """One training run. Relative data paths are looked up in the current folder, then the project root."""

    # model and weights
    model: str = "d12"  # a MODELS preset: d2, d4, d6 (CPU-sized) or d12..d48 (GPT-2 small..XL); "" with --init
    init: str = ""  # start from these weights (llm.c .bin; Hugging Face .bin/.pt/.safetensors or save_pretrained folder)
    # data
    train_data: str = "data/tinyshakespeare/tiny_shakespeare_train.bin"  # training shard(s); a glob is allowed
    val_data: str = "data/tinyshakespeare/tiny_shakespeare_val.bin"  # validation shard(s); a glob is allowed
    vocab: str = ""  # local GPT-2 merge-ranks file for the tokenizer (else $WORKBENCH_GPT2_VOCAB, tiktoken)
    # engine
    device: str = "auto"  # cpu, cuda, or auto (cuda when a GPU is usable)
    dtype: str = "auto"  # fp32, or bf16 (mixed precision, fp32 master weights); auto: bf16 on GPU, fp32 on CPU
    kernels: str = ""  # YAML naming the CUDA kernel variant of each layer: selects the kernel engine
    # batch
    batch_size: int = 4  # B: sequences per micro-batch
    seq_len: int = 1024  # T: tokens per sequence (at most the model's max_seq_len)
    total_batch_size: int = -1  # tokens per optimizer step, a multiple of B*T (gradient accumulation); -1: B*T
    max_steps: int = -1  # optimizer steps; -1: one pass over the training data
    # optimizer: AdamW with decoupled weight decay on the matrices and embeddings only (as llm.c)
    learning_rate: float = 6e-4  # peak learning rate, reached at the end of the warm-up
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr
    final_lr_frac: float = 0.1  # cosine decay ends at learning_rate * final_lr_frac; 1.0: constant lr
    weight_decay: float = 0.1  # AdamW's decoupled weight decay
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.95  # AdamW's second-moment decay
    eps: float = 1e-8  # AdamW's epsilon
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0: no clipping
    # evaluation and samples
    val_every: int = 20  # validation loss every N steps (and at the end); 0: never
    val_steps: int = 20  # batches per validation (fewer when the validation data is shorter)
    sample_every: int = 20  # print a text sample every N steps (and at the end); 0: never
    sample_tokens: int = 64  # tokens per sample
    top_k: int = 40  # sample from the k most likely tokens
    temperature: float = 1.0  # divide the logits by this before sampling
    # checkpoints and logs
    out_dir: str = "out"  # checkpoints (model_*.bin in llm.c format, state_*.pt) and train.log go here
    checkpoint_every: int = 0  # also save a checkpoint every N steps; 0: only at the end (and on Ctrl-C)
    keep_checkpoints: int = 2  # delete all but the newest N checkpoints; 0: keep all
    stop_at: int = -1  # stop after this many steps with a checkpoint, as Ctrl-C does (resume later); -1: off
    seed: int = 1337  # seeds the initialisation and the samples
    profile: bool = False  # before training, print the time per op of one forward and backward
    peak_tflops: float = 0.0  # the GPU's peak for MFU; 0: from a table of bf16 dense peaks (n/a if unknown)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def resolve_path(path: str) -> Path:
    """A relative path (or glob) is taken from the current folder when it matches there, else from the project root."""
    p = Path(path).expanduser()
    if p.is_absolute() or glob.glob(str(p)):
        return p
    return ROOT / p
