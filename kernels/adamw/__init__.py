"""AdamW: the optimizer's update of the fp32 master weights and moments (update.py and update/)."""
from kernels.adamw.update import UPDATE

OPS = [UPDATE]
