"""LayerNorm: the forward and backward ladders (forward.py, backward.py and their folders of .cu files)."""
from kernels.layernorm.backward import BACKWARD
from kernels.layernorm.forward import FORWARD

OPS = [FORWARD, BACKWARD]
