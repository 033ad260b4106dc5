"""GELU (GPT-2's tanh approximation): the forward and backward ladders (forward.py, backward.py and
their folders of .cu files)."""
from kernels.gelu.backward import BACKWARD
from kernels.gelu.forward import FORWARD

OPS = [FORWARD, BACKWARD]
