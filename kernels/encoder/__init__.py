"""Encoder (token plus position embedding): the forward and backward ladders (forward.py, backward.py
and their folders of .cu files)."""
from kernels.encoder.backward import BACKWARD
from kernels.encoder.forward import FORWARD

OPS = [FORWARD, BACKWARD]
