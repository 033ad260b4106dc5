"""The global gradient norm that gradient clipping compares with its threshold (forward.py and forward/)."""
from kernels.global_norm.forward import FORWARD

OPS = [FORWARD]
