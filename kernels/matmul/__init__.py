"""Matmul (the fully connected layer): the forward and backward ladders (forward.py, backward.py and
their folders of .cu files)."""
from kernels.matmul.backward import BACKWARD
from kernels.matmul.forward import FORWARD

OPS = [FORWARD, BACKWARD]
