"""The classifier (softmax fused with cross-entropy): forward (losses only) and backward (dlogits
and losses in one pass, as the training step wants them), each with its ladder of .cu files."""
from kernels.classifier.backward import BACKWARD
from kernels.classifier.forward import FORWARD

OPS = [FORWARD, BACKWARD]
