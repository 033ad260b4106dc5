"""GPT-2's parameters as llm.c lays them out: 16 tensors, in a fixed order, packed in ONE flat fp32
buffer. Every engine and every checkpoint format sees the same buffer, so a checkpoint is a header
plus this buffer, and an engine's optimizer state is two more buffers of the same length.
"""
from __future__ import annotations

import math

import torch

from trainer.config import GPTConfig

# llm.c's order. Shapes in parameter_shapes(); weight matrices are (out_features, in_features).
PARAMETER_NAMES = ("wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                   "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb")

# Tensors AdamW's weight decay applies to: the 2-D matrices and the embeddings (llm.c's choice);
# layernorm parameters and biases are not decayed.
DECAYED = ("wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw")
# The projections back into the residual stream: initialised with std 0.02 / sqrt(2 L), so the
# residual stream's variance does not grow with depth.
RESIDUAL_PROJECTIONS = ("attprojw", "fcprojw")
LAYERNORM_WEIGHTS = ("ln1w", "ln2w", "lnfw")
INIT_STD = 0.02


def parameter_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    L, C, Vp, maxT = cfg.num_layers, cfg.channels, cfg.padded_vocab_size, cfg.max_seq_len
    return {
        "wte": (Vp, C), "wpe": (maxT, C),
        "ln1w": (L, C), "ln1b": (L, C),
        "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C),
        "attprojw": (L, C, C), "attprojb": (L, C),
        "ln2w": (L, C), "ln2b": (L, C),
        "fcw": (L, 4 * C, C), "fcb": (L, 4 * C),
        "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
        "lnfw": (C,), "lnfb": (C,),
    }


def num_parameters(cfg: GPTConfig) -> int:
    """Length of the flat buffer (wte counted with its Vp padded rows, as llm.c)."""
    return sum(math.prod(shape) for shape in parameter_shapes(cfg).values())


def parameter_views(flat: torch.Tensor, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Name -> view into `flat` with the tensor's shape; writing a view writes the buffer."""
    if flat.dim() != 1 or flat.numel() != num_parameters(cfg):
        raise ValueError(f"flat buffer has {tuple(flat.shape)}, expected ({num_parameters(cfg)},)")
    views, offset = {}, 0
    for name, shape in parameter_shapes(cfg).items():
        n = math.prod(shape)
        views[name] = flat[offset:offset + n].view(shape)
        offset += n
    return views


def init_parameters(cfg: GPTConfig, seed: int = 1337) -> torch.Tensor:
    """GPT-2's initialisation, as llm.c: weights normal(0, 0.02), residual projections normal(0,
    0.02 / sqrt(2 L)), layernorm weights 1, biases 0; wte's padding rows (V..Vp-1) stay 0."""
    flat = torch.zeros(num_parameters(cfg), dtype=torch.float32)
    p = parameter_views(flat, cfg)
    g = torch.Generator().manual_seed(seed)
    residual_std = INIT_STD / math.sqrt(2 * cfg.num_layers)
    for name in PARAMETER_NAMES:
        if name in LAYERNORM_WEIGHTS:
            p[name].fill_(1.0)
        elif name == "wte":
            p[name][:cfg.vocab_size].normal_(0.0, INIT_STD, generator=g)
        elif name in DECAYED:  # the remaining matrices and wpe
            p[name].normal_(0.0, residual_std if name in RESIDUAL_PROJECTIONS else INIT_STD, generator=g)
        # biases stay zero
    return flat


def flops_per_token(cfg: GPTConfig, seq_len: int) -> int:
    """Training FLOPs per token (forward + backward), PaLM's estimate as nanoGPT uses: 6 per weight
    that takes part in a matmul (all but wpe and the padding rows) plus 12 L C T for attention."""
    n = num_parameters(cfg) - cfg.max_seq_len * cfg.channels - (cfg.padded_vocab_size - cfg.vocab_size) * cfg.channels
    return 6 * n + 12 * cfg.num_layers * cfg.channels * seq_len
