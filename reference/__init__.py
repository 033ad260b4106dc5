"""Readable PyTorch specifications of every layer, forward and backward written out by hand.

Each function is the spec a kernel variant is checked against (in float64) and is itself tested
against torch.nn.functional and autograd in reference/tests.
"""
