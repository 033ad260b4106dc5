"""Causal self-attention: the forward and backward ladders (forward.py, backward.py and their
folders of .cu files; heads.cuh holds the permutes both passes share)."""
from kernels.attention.backward import BACKWARD
from kernels.attention.forward import FORWARD

OPS = [FORWARD, BACKWARD]
