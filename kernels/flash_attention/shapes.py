"""The per-row tensors flash attention adds to attention's shapes (kernels/attention/shapes.py, whose
dimensions, test shapes, token layouts and input generator both passes reuse)."""
from harness.contract import TensorSpec

# One fp32 per query row of every head: the forward's log-sum-exp, and the backward's D = dout . out.
ROWS = TensorSpec(lambda d: (d.B, d.NH, d.T), "fp32")
LSE = ROWS
ROW_DOTS = ROWS
# Flash backward 5's dq, summed by atomics in fp32 before it is rounded into dqkv: token-major like dqkv.
DQ_ACCUMULATOR = TensorSpec(lambda d: (d.B, d.T, d.NH * d.HS), "fp32")
