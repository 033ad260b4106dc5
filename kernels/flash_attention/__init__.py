"""Flash attention: causal self-attention that saves one log-sum-exp per query row for the backward
instead of the (B, NH, T, T) probabilities (forward.py, backward.py and their folders of .cu files;
shapes.py adds the per-row tensors to attention's shapes)."""
from kernels.flash_attention.backward import BACKWARD
from kernels.flash_attention.forward import FORWARD

OPS = [FORWARD, BACKWARD]
